//! The yard's settings on a SQLite file and on a real PostgreSQL: values
//! that break pasted SQL come back as they were set, secrets are sealed at
//! rest and open only with the key they were sealed with, the key file is
//! private and stable, and `YARD_CONFIG_KEY` wins over it. The forge's
//! webhook deliveries are checked against the secret set here.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use ring::hmac;
use yard_core::ConfigKey;
use yard_services::{
    DataDir, Delivery, EncryptionKey, ForgeWebhooks, KeySource, Receipt, Settings, SettingsError,
    WebhookError,
};
use yard_store::Store;

/// Values that break SQL built by pasting strings.
const AWKWARD_VALUES: [&str; 6] = [
    "it's \"quoted\"",
    "semi; colon;",
    "line one\nline two\r\n",
    "'); DROP TABLE config; --",
    "ünïcødé ✓ 山",
    "$1 $2 \\x00 %s",
];

fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::from_hex(&hex::encode([byte; 32])).unwrap()
}

/// Runs `check` on a fresh SQLite store, then on a fresh PostgreSQL one.
async fn on_each_backend<F, Fut>(check: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    check(Store::open(&Store::sqlite_url(dir.path())).await.unwrap()).await;
    let url = yard_testkit::fresh_postgres_url().await;
    check(Store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn awkward_values_come_back_as_they_were_set_and_secrets_are_sealed_at_rest() {
    on_each_backend(|store| async move {
        let settings = Settings::new(store.clone(), key(7));
        for value in AWKWARD_VALUES {
            for key in [ConfigKey::ForgeAdminUser, ConfigKey::ForgeWebhookSecret] {
                settings.set(key, value).await.unwrap();
                assert_eq!(settings.get(key).await.unwrap().as_deref(), Some(value));
            }
            let stored = store
                .config(ConfigKey::ForgeWebhookSecret)
                .await
                .unwrap()
                .unwrap();
            assert!(stored.secret && stored.value.starts_with("v1:"));
            assert!(!stored.value.contains(value), "{}", stored.value);
            let plain = store
                .config(ConfigKey::ForgeAdminUser)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((plain.secret, plain.value.as_str()), (false, value));
        }

        let listed = settings.list().await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.key).collect::<Vec<_>>(),
            ConfigKey::ALL,
            "every key, set or not"
        );
        let find = |key| listed.iter().find(|s| s.key == key).unwrap();
        let secret = find(ConfigKey::ForgeWebhookSecret);
        assert!(secret.is_set() && secret.secret && secret.value.is_none());
        let user = find(ConfigKey::ForgeAdminUser);
        assert_eq!(user.value.as_deref(), Some(AWKWARD_VALUES[5]));
        assert!(!find(ConfigKey::ClaudeToken).is_set());

        let unset = settings.unset(ConfigKey::ForgeWebhookSecret).await.unwrap();
        assert!(!unset.is_set());
        assert_eq!(
            settings.get(ConfigKey::ForgeWebhookSecret).await.unwrap(),
            None
        );
        assert!(
            !settings
                .unset(ConfigKey::ForgeWebhookSecret)
                .await
                .unwrap()
                .is_set()
        );
    })
    .await;
}

#[tokio::test]
async fn a_value_sealed_with_another_key_is_a_clear_error_without_the_value() {
    on_each_backend(|store| async move {
        Settings::new(store.clone(), key(1))
            .set(ConfigKey::ForgeBotToken, "the-bots-token")
            .await
            .unwrap();
        let sealed = store
            .config(ConfigKey::ForgeBotToken)
            .await
            .unwrap()
            .unwrap();
        let other = Settings::new(store.clone(), key(2));
        let err = other.get(ConfigKey::ForgeBotToken).await.unwrap_err();
        assert!(matches!(
            err,
            SettingsError::WrongKey(ConfigKey::ForgeBotToken)
        ));
        let message = err.to_string();
        assert!(message.contains("forge.bot_token"), "{message}");
        assert!(message.contains("YARD_CONFIG_KEY"), "{message}");
        assert!(!message.contains("the-bots-token"), "{message}");
        assert!(!message.contains(&sealed.value[3..20]), "{message}");
        // Listing opens nothing, so it still works.
        assert!(
            other
                .list()
                .await
                .unwrap()
                .iter()
                .any(|s| s.key == ConfigKey::ForgeBotToken && s.is_set())
        );
    })
    .await;
}

#[tokio::test]
async fn values_a_key_cannot_hold_are_refused_without_being_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
    let settings = Settings::new(store, key(3));
    for (key, value) in [
        (ConfigKey::ClaudeToken, ""),
        (ConfigKey::ClaudeToken, "nul\0inside"),
        (ConfigKey::ForgeUrl, "gitea.local"),
    ] {
        let err = settings.set(key, value).await.unwrap_err();
        assert!(matches!(err, SettingsError::Invalid(_)), "{err}");
        assert!(err.to_string().starts_with(key.as_str()), "{err}");
        assert_eq!(settings.get(key).await.unwrap(), None);
    }
}

#[tokio::test]
async fn the_key_file_is_private_made_once_and_the_given_key_wins() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let (first, source) = EncryptionKey::from_data_dir(&data).unwrap();
    assert_eq!(source, KeySource::Made(data.config_key_path()));
    let meta = std::fs::metadata(data.config_key_path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(data.config_key_path()).unwrap();
    assert_eq!(text.trim().len(), 64);

    // A restart reads the same key: what it sealed still opens.
    let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
    Settings::new(store.clone(), first)
        .set(ConfigKey::TelegramToken, "tg-token")
        .await
        .unwrap();
    let (again, source) = EncryptionKey::from_data_dir(&data).unwrap();
    assert_eq!(source, KeySource::File(data.config_key_path()));
    assert_eq!(
        std::fs::read_to_string(data.config_key_path()).unwrap(),
        text
    );
    let reopened = Settings::new(store.clone(), again);
    assert_eq!(
        reopened
            .get(ConfigKey::TelegramToken)
            .await
            .unwrap()
            .as_deref(),
        Some("tg-token")
    );

    // Several daemons starting at once end with one key.
    let other = tempfile::tempdir().unwrap();
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let data = DataDir::open(other.path()).unwrap();
            std::thread::spawn(move || {
                data.config_key(|| hex::encode(rand::random::<[u8; 32]>()))
                    .unwrap()
            })
        })
        .collect();
    let keys: Vec<String> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");

    // The given key (YARD_CONFIG_KEY) is the one used, whatever the file.
    let given = hex::encode([9u8; 32]);
    let with_given = Settings::new(store.clone(), EncryptionKey::from_hex(&given).unwrap());
    with_given
        .set(ConfigKey::ClaudeToken, "claude")
        .await
        .unwrap();
    let (from_file, _) = EncryptionKey::from_data_dir(&data).unwrap();
    assert!(matches!(
        Settings::new(store.clone(), from_file)
            .get(ConfigKey::ClaudeToken)
            .await,
        Err(SettingsError::WrongKey(_))
    ));

    // A damaged file is named, and its contents are not shown.
    std::fs::write(data.config_key_path(), "not a key at all\n").unwrap();
    let err = EncryptionKey::from_data_dir(&data).unwrap_err().to_string();
    assert!(
        err.contains("config-key") && !err.contains("not a key at all"),
        "{err}"
    );
    let err = EncryptionKey::from_hex("secret-ish")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("YARD_CONFIG_KEY") && !err.contains("secret-ish"),
        "{err}"
    );
}

fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        body,
    ))
}

fn delivery(id: &str, event: &str) -> Delivery {
    Delivery {
        id: id.to_owned(),
        event: event.to_owned(),
        action: Some("opened".to_owned()),
        repository: Some("team/app".to_owned()),
        issue: None,
        comment: None,
        is_pull: false,
    }
}

#[tokio::test]
async fn deliveries_are_believed_only_with_the_secrets_signature_and_recorded_once() {
    on_each_backend(|store| async move {
        let settings = Settings::new(store.clone(), key(4));
        let webhooks = ForgeWebhooks::new(store.clone(), settings.clone());
        let body = br#"{"action":"opened"}"#;
        assert!(matches!(
            webhooks.verify(Some(&sign("x", body)), body).await,
            Err(WebhookError::NoSecret)
        ));
        settings
            .set(ConfigKey::ForgeWebhookSecret, "hook; 'secret'")
            .await
            .unwrap();
        let good = sign("hook; 'secret'", body);
        for (signature, expected) in [
            (None, "MissingSignature"),
            (Some("abc"), "MalformedSignature"),
            (Some(&"z".repeat(64)[..]), "MalformedSignature"),
            (Some(&good[..62]), "MalformedSignature"),
            (Some(&sign("other", body)[..]), "WrongSignature"),
        ] {
            let err = webhooks.verify(signature, body).await.unwrap_err();
            assert!(format!("{err:?}").starts_with(expected), "{err:?}");
        }
        let tampered = br#"{"action":"closed"}"#;
        assert!(matches!(
            webhooks.verify(Some(&good), tampered).await,
            Err(WebhookError::WrongSignature)
        ));

        let verified = webhooks
            .verify(Some(&good.to_uppercase()), body)
            .await
            .unwrap();
        assert_eq!(verified.body(), body);
        assert_eq!(
            webhooks
                .receive(verified, delivery("d-1", "issues"))
                .await
                .unwrap(),
            Receipt::Accepted
        );
        let again = webhooks.verify(Some(&good), body).await.unwrap();
        assert_eq!(
            webhooks
                .receive(again, delivery("d-1", "issues"))
                .await
                .unwrap(),
            Receipt::Duplicate
        );
        let verified = webhooks.verify(Some(&good), body).await.unwrap();
        assert_eq!(
            webhooks
                .receive(verified, delivery("d-2", "release"))
                .await
                .unwrap(),
            Receipt::Ignored
        );
        for (id, event) in [
            ("", "issues"),
            ("d 3", "issues"),
            ("d-3", ""),
            (&"d".repeat(129)[..], "push"),
        ] {
            let verified = webhooks.verify(Some(&good), body).await.unwrap();
            assert!(matches!(
                webhooks.receive(verified, delivery(id, event)).await,
                Err(WebhookError::BadHeader { .. })
            ));
        }
    })
    .await;
}
