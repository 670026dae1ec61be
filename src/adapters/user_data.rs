//! Worker user data (README, "On AWS"): a template with `{{placeholders}}`,
//! rendered at launch with the master's address and the *name* of the SSM
//! parameter that holds the join token. The token itself never passes
//! through here.

use crate::ports::PortError;

/// The default template, built in, so a binary installed anywhere can launch.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../assets/user-data.sh.tmpl");

pub struct UserDataValues<'a> {
    pub cluster: &'a str,
    pub region: &'a str,
    pub master_address: &'a str,
    pub token_parameter: &'a str,
    pub op_id: &'a str,
    /// `INSTALL_K3S_VERSION`: the release the plan pinned.
    pub k3s_version: &'a str,
    /// `INSTALL_K3S_SKIP_DOWNLOAD`: `"true"` for an AMI with K3s baked in.
    pub k3s_skip_download: &'a str,
}

pub fn render(template: &str, v: &UserDataValues<'_>) -> Result<String, PortError> {
    let mut out = template.to_string();
    for (key, value) in [
        ("cluster", v.cluster),
        ("region", v.region),
        ("master_address", v.master_address),
        ("token_parameter", v.token_parameter),
        ("op_id", v.op_id),
        ("k3s_version", v.k3s_version),
        ("k3s_skip_download", v.k3s_skip_download),
    ] {
        if value.contains(['"', '\'', '`', '$', '\\', '\n']) {
            return Err(PortError::Invalid(format!(
                "user data value {key} contains shell metacharacters: {value:?}"
            )));
        }
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    if let Some(start) = out.find("{{") {
        let rest = &out[start..];
        let end = rest.find("}}").map_or(rest.len(), |e| e + 2);
        return Err(PortError::Invalid(format!(
            "user data template has an unknown placeholder {}",
            &rest[..end]
        )));
    }
    Ok(out)
}

/// Standard base64 with padding (EC2's UserData encoding). The `base64`
/// crate is already built for k8s-openapi: it costs the build nothing.
pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decode standard base64 (EC2's console output); whitespace (the line
/// breaks of a long output) is skipped, padding may be present or not,
/// anything else outside the alphabet is an error.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    LENIENT
        .decode(compact)
        .map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> UserDataValues<'static> {
        UserDataValues {
            cluster: "prod",
            region: "eu-west-1",
            master_address: "10.0.1.5",
            token_parameter: "/k3s/agent-token",
            op_id: "op-1",
            k3s_version: "v1.33.1+k3s1",
            k3s_skip_download: "false",
        }
    }

    #[test]
    fn renders_the_default_template_with_no_placeholder_left() {
        let text = render(DEFAULT_TEMPLATE, &values()).unwrap();
        assert!(text.starts_with("#!/bin/bash"));
        assert!(text.contains("MASTER=\"10.0.1.5\""));
        assert!(text.contains("K3S_URL=\"https://$MASTER:6443\""));
        assert!(text.contains("/k3s/agent-token"));
        assert!(text.contains("--with-decryption"));
        assert!(text.contains("K3S_VERSION=\"v1.33.1+k3s1\""));
        assert!(text.contains("INSTALL_K3S_VERSION=\"$K3S_VERSION\""));
        assert!(!text.contains("{{"));
    }

    #[test]
    fn unknown_placeholders_and_metacharacters_are_refused() {
        assert!(render("{{nope}}", &values()).is_err());
        let bad = UserDataValues {
            master_address: "1.2.3.4; rm -rf /",
            ..values()
        };
        assert!(
            render(DEFAULT_TEMPLATE, &bad).is_ok(),
            "a semicolon is inside quotes"
        );
        let bad = UserDataValues {
            master_address: "$(reboot)",
            ..values()
        };
        assert!(render(DEFAULT_TEMPLATE, &bad).is_err());
    }

    #[test]
    fn base64_decodes_what_it_encodes() {
        for plain in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "boot log\n\u{1b}[0m",
        ] {
            assert_eq!(
                base64_decode(&base64(plain.as_bytes())).unwrap(),
                plain.as_bytes()
            );
        }
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("Zm8").unwrap(), b"fo");
        assert!(base64_decode("Zm9v!").is_err());
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
