//! The fake Gitea's webhook deliveries: a JSON payload POSTed to a hook's
//! URL with the headers Gitea sends (`X-Gitea-Event`,
//! `X-Gitea-Event-Type`, `X-Gitea-Delivery`, `X-Gitea-Signature`, their
//! `X-Gogs-` and `X-GitHub-` twins, `X-Hub-Signature-256`, and the hook's
//! `Authorization` header if it has one). The signature is the hex
//! HMAC-SHA256 of the raw body keyed with the hook's secret, empty when
//! the hook has none. Also the Basic credentials reader the fake's
//! authentication needs.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Delivery;

/// Where one delivery goes and how it is signed.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) hook_id: i64,
    pub(super) url: String,
    pub(super) content_type: String,
    pub(super) secret: String,
    pub(super) authorization_header: String,
}

/// Hex HMAC-SHA256 of `message` keyed with `key` (RFC 2104).
pub(super) fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest: [u8; 32] = Sha256::digest(key).into();
        block[..32].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let inner: [u8; 32] = inner.finalize().into();
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner);
    let outer: [u8; 32] = outer.finalize().into();
    hex::encode(outer)
}

/// Sends one payload to one hook, as Gitea does.
pub(super) async fn deliver(
    target: &Target,
    event_type: &str,
    event: &str,
    payload: &serde_json::Value,
) -> Delivery {
    let body = payload.to_string();
    let id = uuid::Uuid::new_v4().to_string();
    let signature = if target.secret.is_empty() {
        String::new()
    } else {
        hmac_sha256_hex(target.secret.as_bytes(), body.as_bytes())
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build();
    let mut delivery = Delivery {
        hook_id: target.hook_id,
        url: target.url.clone(),
        event: event.to_owned(),
        event_type: event_type.to_owned(),
        id: id.clone(),
        signature: signature.clone(),
        body: body.clone(),
        status: None,
        error: None,
    };
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            delivery.error = Some(e.to_string());
            return delivery;
        }
    };
    let (content_type, sent) = if target.content_type == "form" {
        let form: String = reqwest::Url::parse_with_params("http://form/", [("payload", &body)])
            .ok()
            .and_then(|u| u.query().map(str::to_owned))
            .unwrap_or_default();
        ("application/x-www-form-urlencoded", form)
    } else {
        ("application/json", body)
    };
    let mut request = client
        .post(&target.url)
        .header("Content-Type", content_type)
        .header("User-Agent", "Go-http-client/1.1")
        .header("X-Gitea-Delivery", &id)
        .header("X-Gitea-Event", event)
        .header("X-Gitea-Event-Type", event_type)
        .header("X-Gitea-Signature", &signature)
        .header("X-Gogs-Delivery", &id)
        .header("X-Gogs-Event", event)
        .header("X-Gogs-Event-Type", event_type)
        .header("X-Gogs-Signature", &signature)
        .header("X-GitHub-Delivery", &id)
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Event-Type", event_type)
        .header("X-Hub-Signature-256", format!("sha256={signature}"))
        .body(sent);
    if !target.authorization_header.is_empty() {
        request = request.header("Authorization", &target.authorization_header);
    }
    match request.send().await {
        Ok(response) => delivery.status = Some(response.status().as_u16()),
        Err(e) => delivery.error = Some(e.to_string()),
    }
    delivery
}

/// Standard base64 (padding optional) decoded, for Basic credentials.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        buffer = (buffer << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hmac_sha256_hex(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn basic_credentials_decode() {
        assert_eq!(
            base64_decode("dXNlcjpwYXNz").as_deref(),
            Some(&b"user:pass"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert!(base64_decode("!!").is_none());
    }
}
