-- What the asking agent was put to do (its task, as far as a list shows
-- it), kept with the question so a person sees it beside the question
-- without a look at the agent.

ALTER TABLE questions ADD COLUMN agent_task TEXT;
