//! What EC2 refuses, refused at load time instead: a config that
//! EC2 would answer with `InvalidParameterValue` or `TagLimitExceeded` on
//! the first launch, during a flash sale, is an error of the config file,
//! named by key with the limit, and the process exits 2.
//!
//! The EC2 service model carries no length limits for these fields; they
//! are the documented ones (EC2 User Guide, "Tag restrictions"; RunInstances
//! `UserData`).

use super::{Ec2Config, InvalidValue};
use crate::ports::cloud::{TAG_CLUSTER, TAG_OP_ID, TAG_ROLE};

/// Tag keys: at most 127 Unicode characters.
pub const TAG_KEY_MAX_CHARS: usize = 127;
/// Tag values: at most 256 Unicode characters.
pub const TAG_VALUE_MAX_CHARS: usize = 256;
/// Tags on one resource, ours included.
pub const TAGS_PER_RESOURCE: usize = 50;
/// User data, before base64: 16 KB.
pub const USER_DATA_MAX_BYTES: usize = 16 * 1024;

/// The tags the EC2 adapter puts on every worker itself. The first three
/// are how it tells its workers apart from everything else: a user tag of
/// the same key would be overwritten, so it is refused rather than ignored.
const OWN_TAGS: [&str; 3] = [TAG_CLUSTER, TAG_ROLE, TAG_OP_ID];

/// The first problem with `ec2.tags` or the cluster name (which is a tag
/// value on every worker).
pub fn check_tags(ec2: &Ec2Config, cluster: &str) -> Result<(), InvalidValue> {
    let bad = |key: String, why: String| Err(InvalidValue { key, why });
    if cluster.chars().count() > TAG_VALUE_MAX_CHARS {
        return bad(
            "cluster.name".into(),
            format!(
                "is {} characters; it is the value of the {TAG_CLUSTER} tag on every worker, and EC2 allows at most {TAG_VALUE_MAX_CHARS}",
                cluster.chars().count()
            ),
        );
    }
    for (k, v) in &ec2.tags {
        let key = format!("ec2.tags.{k}");
        if k.is_empty() {
            return bad("ec2.tags".into(), "a tag key must not be empty".into());
        }
        if k.chars().count() > TAG_KEY_MAX_CHARS {
            return bad(
                key,
                format!(
                    "the tag key is {} characters; EC2 allows at most {TAG_KEY_MAX_CHARS}",
                    k.chars().count()
                ),
            );
        }
        if v.chars().count() > TAG_VALUE_MAX_CHARS {
            return bad(
                key,
                format!(
                    "the tag value is {} characters; EC2 allows at most {TAG_VALUE_MAX_CHARS}",
                    v.chars().count()
                ),
            );
        }
        // Keys only: the EC2 API reference reserves the prefix for keys.
        if k.to_ascii_lowercase().starts_with("aws:") {
            return bad(
                key,
                "a tag key may not start with \"aws:\" (reserved by AWS; EC2 refuses it)".into(),
            );
        }
        if OWN_TAGS.contains(&k.as_str()) {
            return bad(
                key,
                "is set by k3s-autoscaler itself on every worker (it is how workers are told apart); choose another key".into(),
            );
        }
    }
    let own = OWN_TAGS.len() + usize::from(!ec2.tags.contains_key("Name"));
    if ec2.tags.len() + own > TAGS_PER_RESOURCE {
        return bad(
            "ec2.tags".into(),
            format!(
                "{} tags plus the {own} k3s-autoscaler sets is more than the {TAGS_PER_RESOURCE} EC2 allows on an instance",
                ec2.tags.len()
            ),
        );
    }
    Ok(())
}

/// User data over EC2's limit, as the reason to refuse it.
pub fn check_user_data(rendered: &str) -> Result<(), String> {
    if rendered.len() > USER_DATA_MAX_BYTES {
        return Err(format!(
            "the rendered user data is {} bytes; EC2 allows at most {USER_DATA_MAX_BYTES} (16 KB, before base64)",
            rendered.len()
        ));
    }
    Ok(())
}
