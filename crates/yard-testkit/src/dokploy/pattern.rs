//! A small backtracking matcher for the regular expressions JSON Schema
//! `pattern`s use in Dokploy's document: literals and escapes, `.`,
//! character classes with ranges, `\d \w \s` and their negations, groups
//! with alternation, non-capturing groups and lookaheads, and the
//! quantifiers `* + ? {n} {n,} {n,m}`. Like ECMAScript's `test`, a pattern
//! matches anywhere unless anchored. Anything else (backreferences, word
//! boundaries, Unicode classes) is refused when parsed, so the validator
//! says it cannot check rather than passing a value it did not understand.

/// A parsed pattern.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    alternatives: Vec<Vec<Node>>,
}

#[derive(Debug, Clone)]
enum Node {
    Start,
    End,
    Set(Set),
    Group(Vec<Vec<Node>>),
    Look {
        negated: bool,
        alternatives: Vec<Vec<Node>>,
    },
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Debug, Clone)]
struct Set {
    negated: bool,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
    /// `.`: anything but a line break.
    Any,
}

impl Item {
    fn matches(self, c: char) -> bool {
        match self {
            Self::Range(low, high) => (low..=high).contains(&c),
            Self::Digit(yes) => c.is_ascii_digit() == yes,
            Self::Word(yes) => (c.is_ascii_alphanumeric() || c == '_') == yes,
            Self::Space(yes) => c.is_whitespace() == yes,
            Self::Any => !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'),
        }
    }
}

impl Set {
    fn one(item: Item) -> Self {
        Self {
            negated: false,
            items: vec![item],
        }
    }

    fn matches(&self, c: char) -> bool {
        self.items.iter().any(|i| i.matches(c)) != self.negated
    }
}

impl Pattern {
    /// Parses `source`, or says what in it this matcher does not support.
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        let chars: Vec<char> = source.chars().collect();
        let mut parser = Parser {
            chars: &chars,
            at: 0,
        };
        let alternatives = parser.alternatives()?;
        if parser.at != chars.len() {
            return Err(format!("unbalanced ')' at {}", parser.at));
        }
        Ok(Self { alternatives })
    }

    /// Whether `text` has a match anywhere (ECMAScript's `RegExp.test`).
    pub(super) fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        (0..=chars.len()).any(|start| {
            self.alternatives
                .iter()
                .any(|alt| matches(alt, &chars, start, &mut |_| true))
        })
    }
}

struct Parser<'a> {
    chars: &'a [char],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn alternatives(&mut self) -> Result<Vec<Vec<Node>>, String> {
        let mut alternatives = vec![self.sequence()?];
        while self.eat('|') {
            alternatives.push(self.sequence()?);
        }
        Ok(alternatives)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, String> {
        let mut nodes = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            nodes.push(self.quantified(atom)?);
        }
        Ok(nodes)
    }

    fn atom(&mut self) -> Result<Node, String> {
        let at = self.at;
        let c = self.next().ok_or("unexpected end")?;
        Ok(match c {
            '^' => Node::Start,
            '$' => Node::End,
            '.' => Node::Set(Set::one(Item::Any)),
            '[' => Node::Set(self.class()?),
            '(' => {
                let node = if self.eat('?') {
                    match self.next() {
                        Some(':') => Node::Group(self.alternatives()?),
                        Some('!') => Node::Look {
                            negated: true,
                            alternatives: self.alternatives()?,
                        },
                        Some('=') => Node::Look {
                            negated: false,
                            alternatives: self.alternatives()?,
                        },
                        _ => return Err(format!("unsupported group at {at}")),
                    }
                } else {
                    Node::Group(self.alternatives()?)
                };
                if !self.eat(')') {
                    return Err(format!("unclosed group at {at}"));
                }
                node
            }
            '\\' => Node::Set(Set::one(self.escape(false)?)),
            '*' | '+' | '?' | '{' => return Err(format!("nothing to repeat at {at}")),
            c => Node::Set(Set::one(Item::Range(c, c))),
        })
    }

    fn escape(&mut self, in_class: bool) -> Result<Item, String> {
        let at = self.at;
        let c = self.next().ok_or("a pattern ends in a backslash")?;
        Ok(match c {
            'd' => Item::Digit(true),
            'D' => Item::Digit(false),
            'w' => Item::Word(true),
            'W' => Item::Word(false),
            's' => Item::Space(true),
            'S' => Item::Space(false),
            'n' => Item::Range('\n', '\n'),
            'r' => Item::Range('\r', '\r'),
            't' => Item::Range('\t', '\t'),
            c if c.is_ascii_punctuation() => Item::Range(c, c),
            'b' if in_class => Item::Range('\u{8}', '\u{8}'),
            other => return Err(format!("unsupported escape \\{other} at {at}")),
        })
    }

    fn class(&mut self) -> Result<Set, String> {
        let start = self.at;
        let negated = self.eat('^');
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let c = self
                .next()
                .ok_or_else(|| format!("unclosed class at {start}"))?;
            if c == ']' && !first {
                break;
            }
            // `[]` and `[^]` are not what anyone means here.
            if c == ']' {
                return Err(format!("empty class at {start}"));
            }
            first = false;
            let low = if c == '\\' {
                self.escape(true)?
            } else {
                Item::Range(c, c)
            };
            let range_follows =
                self.peek() == Some('-') && self.chars.get(self.at + 1).is_some_and(|n| *n != ']');
            match (low, range_follows) {
                (Item::Range(low, _), true) => {
                    self.at += 1;
                    let high = match self.next() {
                        Some('\\') => match self.escape(true)? {
                            Item::Range(high, _) => high,
                            _ => return Err(format!("a range ends in a class at {}", self.at)),
                        },
                        Some(high) => high,
                        None => return Err(format!("unclosed class at {start}")),
                    };
                    if high < low {
                        return Err(format!("range out of order at {}", self.at));
                    }
                    items.push(Item::Range(low, high));
                }
                (item, _) => items.push(item),
            }
        }
        Ok(Set { negated, items })
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let at = self.at;
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.at += 1;
                let min = self.number().ok_or_else(|| format!("bad {{ at {at}"))?;
                let max = if self.eat(',') {
                    if self.peek() == Some('}') {
                        None
                    } else {
                        Some(self.number().ok_or_else(|| format!("bad {{ at {at}"))?)
                    }
                } else {
                    Some(min)
                };
                if !self.eat('}') || max.is_some_and(|max| max < min) {
                    return Err(format!("bad {{ at {at}"));
                }
                // The brace is consumed; fall through with the bounds.
                return self.finish_repeat(atom, min, max, at);
            }
            _ => return Ok(atom),
        };
        self.at += 1;
        self.finish_repeat(atom, min, max, at)
    }

    fn finish_repeat(
        &mut self,
        atom: Node,
        min: u32,
        max: Option<u32>,
        at: usize,
    ) -> Result<Node, String> {
        if matches!(atom, Node::Start | Node::End | Node::Look { .. }) {
            return Err(format!("nothing to repeat at {at}"));
        }
        // Laziness does not change whether there is a match.
        self.eat('?');
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        self.chars[start..self.at]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }
}

/// Whether `nodes` match `text` from `at`, with `next` accepting where the
/// match ends (continuation-passing backtracking).
fn matches(nodes: &[Node], text: &[char], at: usize, next: &mut dyn FnMut(usize) -> bool) -> bool {
    let Some((first, rest)) = nodes.split_first() else {
        return next(at);
    };
    match first {
        Node::Start => at == 0 && matches(rest, text, at, next),
        Node::End => at == text.len() && matches(rest, text, at, next),
        Node::Set(set) => {
            text.get(at).is_some_and(|c| set.matches(*c)) && matches(rest, text, at + 1, next)
        }
        Node::Group(alternatives) => alternatives
            .iter()
            .any(|alt| matches(alt, text, at, &mut |end| matches(rest, text, end, next))),
        Node::Look {
            negated,
            alternatives,
        } => {
            let found = alternatives
                .iter()
                .any(|alt| matches(alt, text, at, &mut |_| true));
            found != *negated && matches(rest, text, at, next)
        }
        Node::Repeat { node, min, max } => repeat(node, *min, *max, 0, text, at, &mut |end| {
            matches(rest, text, end, next)
        }),
    }
}

/// Greedy repetition: one more of `node` first, then what follows.
fn repeat(
    node: &Node,
    min: u32,
    max: Option<u32>,
    count: u32,
    text: &[char],
    at: usize,
    next: &mut dyn FnMut(usize) -> bool,
) -> bool {
    let more_allowed = max.is_none_or(|max| count < max);
    if more_allowed
        && matches(std::slice::from_ref(node), text, at, &mut |end| {
            // An empty match cannot make progress; it only counts towards
            // the minimum.
            (end != at || count < min) && repeat(node, min, max, count + 1, text, end, next)
        })
    {
        return true;
    }
    count >= min && next(at)
}
