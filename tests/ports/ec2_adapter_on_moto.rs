//! The EC2 adapter on moto only, and rightly: what it puts in RunInstances
//! and how it reads EC2's answers (pages, refusals, wildcards, forgotten
//! instances) is a translation the simulator has no counterpart of. The
//! suite both backends share is `conformance_cloud.rs`, whose moto fixture
//! these tests reuse.

use crate::conformance_cloud::{MotoFixture, ids, launch_request};
use crate::support;
use k3s_autoscaler::adapters::ec2::Ec2Fleet;
use k3s_autoscaler::adapters::user_data::DEFAULT_TEMPLATE;
use k3s_autoscaler::ports::*;
use std::collections::BTreeSet;

/// On moto only, and rightly: this reads back what the EC2 adapter put in
/// RunInstances (tags, metadata options, user data), a translation the
/// simulator has no counterpart of (its launch takes the domain request).
#[tokio::test]
async fn a_launch_carries_the_tags_imdsv2_and_user_data_without_a_secret() {
    let f = MotoFixture::new().await;
    let launched = f.fleet.launch(&launch_request("op-tags", 1)).await.unwrap();
    let id = &launched[0].id;
    let out = f
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let instance = &out.reservations()[0].instances()[0];
    let tags: std::collections::BTreeMap<&str, &str> = instance
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(
        tags.get("k3s-autoscaler/cluster"),
        Some(&f.cluster.as_str())
    );
    assert_eq!(tags.get("k3s-autoscaler/role"), Some(&"worker"));
    assert_eq!(tags.get("k3s-autoscaler/op-id"), Some(&"op-tags"));
    let imds = instance
        .metadata_options()
        .and_then(|m| m.http_tokens())
        .map(|t| t.as_str());
    assert_eq!(imds, Some("required"));
    let attr = f
        .ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = attr
        .user_data()
        .and_then(|u| u.value())
        .unwrap_or_default()
        .to_string();
    assert!(!encoded.is_empty(), "user data was sent");
    let decoded = decode_base64(&encoded);
    assert!(decoded.contains("--with-decryption"), "{decoded}");
    assert!(
        decoded.contains("/k3s/agent-token"),
        "the parameter name, not a value"
    );
    assert!(
        decoded.contains("--node-name \"$INSTANCE_ID\""),
        "{decoded}"
    );
    // The release the plan pinned, not whatever get.k3s.io serves today.
    assert!(
        decoded.contains("K3S_VERSION=\"v1.33.1+k3s1\""),
        "{decoded}"
    );
}

fn decode_base64(text: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// DescribeInstances answered in pages (five reservations each, EC2's
/// smallest): every managed worker is listed, across pages, and a listing
/// that stopped at the first page would miss some.
#[tokio::test]
async fn managed_workers_are_listed_across_pages() {
    let f = MotoFixture::new().await;
    f.strict.page_size(5);
    let mut launched = BTreeSet::new();
    for n in 0..8 {
        let one = f
            .fleet
            .launch(&launch_request(&format!("op-page-{n}"), 1))
            .await
            .unwrap();
        launched.extend(ids(&one));
    }
    let listed = ids(&f.fleet.managed_instances().await.unwrap());
    assert_eq!(listed, launched, "8 reservations in pages of 5");
    let by_op = f.fleet.instances_for_op("op-page-7").await.unwrap();
    assert_eq!(by_op.len(), 1);
}

/// On moto with EC2's own validation on (scripts/peers.sh): a launch with
/// everything an operator sets (a subnet, security groups, an instance
/// profile, a key pair, extra tags and their own Name) carries each of
/// them; and what EC2 refuses (a subnet, group, key pair or AMI that does
/// not exist) is refused, as a failure of the launch, never as "no
/// capacity" (which would walk the instance-type list for nothing).
#[tokio::test]
async fn a_launch_with_every_placement_setting_carries_each_and_refuses_unknown_ones() {
    let f = MotoFixture::new().await;
    let vpc = f
        .ec2
        .create_vpc()
        .cidr_block("10.77.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    let subnet = f
        .ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.77.1.0/24")
        .availability_zone("us-east-1b")
        .send()
        .await
        .unwrap();
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_string();
    let group = f
        .ec2
        .create_security_group()
        .group_name(support::unique("k3s-workers"))
        .description("k3s workers")
        .vpc_id(&vpc_id)
        .send()
        .await
        .unwrap();
    let group_id = group.group_id().unwrap().to_string();
    let key = support::unique("k3s-key");
    f.ec2.create_key_pair().key_name(&key).send().await.unwrap();
    let profile = support::unique("k3s-worker");
    create_instance_profile(&profile).await;

    let sdk = support::sdk_at(&f.strict.url).await;
    let fleet = |edit: &dyn Fn(&mut k3s_autoscaler::config::Ec2Config)| {
        let mut config = support::moto_config(&f.cluster, "unused");
        config.ec2.master_tag = format!("k3s-autoscaler/master={}", f.cluster);
        config.ec2.subnets = vec![subnet_id.clone()];
        config.ec2.security_groups = vec![group_id.clone()];
        config.ec2.instance_profile = Some(profile.clone());
        config.ec2.key_name = Some(key.clone());
        config.ec2.tags = [("team", "shop"), ("Name", "shop-worker")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        edit(&mut config.ec2);
        Ec2Fleet::new(&sdk, &f.cluster, &config.ec2, DEFAULT_TEMPLATE.into())
    };
    let mut request = launch_request("op-placed", 1);
    request.subnet = Some(subnet_id.clone());
    let launched = fleet(&|_| {}).launch(&request).await.unwrap();
    let out = f
        .ec2
        .describe_instances()
        .instance_ids(&launched[0].id)
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(i.subnet_id(), Some(subnet_id.as_str()));
    assert_eq!(i.vpc_id(), Some(vpc_id.as_str()));
    assert_eq!(
        i.placement().and_then(|p| p.availability_zone()),
        Some("us-east-1b")
    );
    let groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, [group_id.as_str()]);
    assert_eq!(i.key_name(), Some(key.as_str()));
    assert!(
        i.iam_instance_profile()
            .and_then(|p| p.arn())
            .is_some_and(|arn| arn.ends_with(&format!("/{profile}"))),
        "{:?}",
        i.iam_instance_profile()
    );
    let tags: std::collections::BTreeMap<&str, &str> = i
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags.get("team"), Some(&"shop"));
    assert_eq!(
        tags.get("Name"),
        Some(&"shop-worker"),
        "the operator's Name wins"
    );
    assert_eq!(
        tags.get("k3s-autoscaler/cluster"),
        Some(&f.cluster.as_str())
    );

    // What does not exist is refused, and not as capacity.
    let cases: [RefusedCase; 5] = [
        ("subnet", &|_| {}, Some("subnet-00000000deadbeef0")),
        (
            "security group",
            &|c| c.security_groups = vec!["sg-00000000deadbeef0".into()],
            None,
        ),
        (
            "key pair",
            &|c| c.key_name = Some("no-such-key".into()),
            None,
        ),
        ("AMI", &|c| c.ami = Some("ami-00000000".into()), None),
        (
            "instance profile",
            &|c| c.instance_profile = Some("no-such-profile".into()),
            None,
        ),
    ];
    for (n, (what, edit, subnet)) in cases.into_iter().enumerate() {
        let mut request = launch_request(&format!("op-refused-{n}"), 1);
        request.subnet = Some(subnet.unwrap_or(&subnet_id).to_string());
        let err = fleet(edit).launch(&request).await.unwrap_err();
        assert!(
            !matches!(err, PortError::InsufficientCapacity(_)),
            "an unknown {what} is not a capacity problem: {err}"
        );
        assert!(
            f.fleet
                .instances_for_op(&format!("op-refused-{n}"))
                .await
                .unwrap()
                .is_empty(),
            "an unknown {what} launched something"
        );
    }
}

/// What a refused launch changes, what it is, and the subnet it asks for.
type RefusedCase<'a> = (
    &'a str,
    &'a dyn Fn(&mut k3s_autoscaler::config::Ec2Config),
    Option<&'a str>,
);

/// IAM's CreateInstanceProfile on moto's server (the project has no IAM
/// client: its only IAM need is this test's fixture). moto routes by the
/// signature's service name and does not check the signature itself.
async fn create_instance_profile(name: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}/", support::moto_url()))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "Action=CreateInstanceProfile&Version=2010-05-08&InstanceProfileName={name}"
        ))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "CreateInstanceProfile: {status} {body}"
    );
}

/// EC2 forgets a terminated instance after about an hour (here at once,
/// through the strict proxy): it is gone by id and from the op's listing,
/// and its launch's token cannot launch again
/// (`IdempotentInstanceTerminated`, read as a reused token).
#[tokio::test]
async fn a_forgotten_instance_is_gone_and_its_token_launches_nothing() {
    let f = MotoFixture::new().await;
    f.strict.forget_terminated_after(std::time::Duration::ZERO);
    let first = f
        .fleet
        .launch(&launch_request("op-forgot", 1))
        .await
        .unwrap();
    let id = first[0].id.clone();
    f.fleet.terminate(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(
        f.fleet.instance(&id).await.unwrap(),
        None,
        "forgotten by id"
    );
    assert!(
        f.fleet
            .instances_for_op("op-forgot")
            .await
            .unwrap()
            .is_empty()
    );
    let before = f.strict.launches();
    let again = f
        .fleet
        .launch(&launch_request("op-forgot", 1))
        .await
        .unwrap_err();
    assert!(matches!(again, PortError::TokenReused(_)), "{again}");
    assert_eq!(f.strict.launches(), before, "nothing launched");
}

/// EC2's launch refusals in its own XML shape, through the real adapter:
/// each code after which another zone or type may succeed is
/// read as "no capacity" (the plan moves on); throttling (503
/// `RequestLimitExceeded`) is transient, retried as such, never "no
/// capacity". Nothing is launched by any of them.
#[tokio::test]
async fn launch_refusals_are_read_as_ec2_means_them() {
    let f = MotoFixture::new().await;
    // The fixture's own master went through the proxy.
    let launched_before = f.strict.launches();
    for (n, code) in [
        "InsufficientInstanceCapacity",
        "Unsupported",
        "VcpuLimitExceeded",
        "InstanceLimitExceeded",
    ]
    .into_iter()
    .enumerate()
    {
        f.strict.refuse_type("t3.large", code);
        let refused = f
            .fleet
            .launch(&launch_request(&format!("op-refused-{n}"), 1))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, PortError::InsufficientCapacity(m) if m.starts_with(code)),
            "{code}: {refused:?}"
        );
    }
    f.strict.refuse_type("t3.large", "RequestLimitExceeded");
    let throttled = f
        .fleet
        .launch(&launch_request("op-throttled", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(throttled, PortError::Throttled(_)),
        "{throttled:?}"
    );
    assert_eq!(
        f.strict.launches(),
        launched_before,
        "a refusal launches nothing"
    );
    f.strict.clear_refusals();
    let launched = f
        .fleet
        .launch(&launch_request("op-after", 1))
        .await
        .unwrap();
    assert_eq!(launched.len(), 1);
}

/// `*` and `?` are wildcards in EC2 filter values: a cluster
/// named `NAME*` must list its own workers and not those of `NAME`, and
/// by op id too. moto reads the escapes as EC2 does, so this fails if the
/// adapter sends the name unescaped (its own workers still match, but so
/// do the other cluster's, and only the exact tag check would save it) or
/// escapes what it should not (its own workers vanish).
#[tokio::test]
async fn a_cluster_name_with_a_wildcard_matches_only_itself() {
    let f = MotoFixture::new().await;
    let starred = format!("{}*", f.cluster);
    let mut config = support::moto_config(&starred, "unused");
    config.ec2.master_tag = format!("k3s-autoscaler/master={}", f.cluster);
    let star = Ec2Fleet::new(
        &support::sdk_at(&f.strict.url).await,
        &starred,
        &config.ec2,
        DEFAULT_TEMPLATE.into(),
    );
    let plain = f
        .fleet
        .launch(&launch_request("op-plain", 1))
        .await
        .unwrap();
    let own = star.launch(&launch_request("op-star", 1)).await.unwrap();
    assert!(own.iter().all(|i| i.managed), "{own:?}");
    let listed = ids(&star.managed_instances().await.unwrap());
    assert_eq!(listed, ids(&own), "the starred cluster lists itself only");
    assert!(
        star.instances_for_op("op-plain").await.unwrap().is_empty(),
        "another cluster's operation is not ours"
    );
    assert_eq!(
        ids(&star.instances_for_op("op-star").await.unwrap()),
        ids(&own)
    );
    // The same check through the filters alone (the exact tag comparison
    // is the second line): EC2 itself must not return the other worker.
    let out = f
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:k3s-autoscaler/cluster")
                .values(format!("{}\\*", f.cluster))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let matched: BTreeSet<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    assert_eq!(matched, ids(&own), "an escaped * is a literal *");
    assert!(ids(&plain).is_disjoint(&matched));
}

/// The EC2 request checker can fail (it guards every test that goes
/// through the strict proxy): each limit it knows, broken once, is
/// flagged, and a request within them is not.
#[test]
fn the_ec2_request_checker_can_fail() {
    use crate::support::service_model::check_ec2;
    let form = |pairs: &[(&str, String)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let run = |extra: &[(&str, String)]| {
        let mut pairs = vec![
            ("Action", "RunInstances".to_string()),
            ("ImageId", "ami-12c6146b".to_string()),
            ("MinCount", "1".to_string()),
            ("MaxCount", "1".to_string()),
            ("ClientToken", "k3sa-op-1-0".to_string()),
            (
                "TagSpecification.1.Tag.1.Key",
                "k3s-autoscaler/cluster".to_string(),
            ),
            ("TagSpecification.1.Tag.1.Value", "prod".to_string()),
        ];
        pairs.extend(extra.iter().cloned());
        check_ec2(&form(&pairs))
    };
    assert!(run(&[]).is_empty(), "{:?}", run(&[]));
    let big_user_data = k3s_autoscaler::adapters::user_data::base64(&[b'#'; 16 * 1024 + 1]);
    for (extra, want) in [
        (vec![("ClientToken", "t".repeat(65))], "ClientToken"),
        (
            vec![("TagSpecification.1.Tag.2.Key", "k".repeat(128))],
            "128 characters",
        ),
        (
            vec![("TagSpecification.1.Tag.2.Key", "aws:owner".to_string())],
            "reserved aws:",
        ),
        (
            vec![("TagSpecification.1.Tag.1.Value", "v".repeat(257))],
            "at most 256",
        ),
        (
            vec![("UserData", big_user_data)],
            "user data is 16385 bytes",
        ),
        (vec![("MinCount", "0".to_string())], "MinCount/MaxCount"),
    ] {
        let flagged = run(&extra);
        assert!(
            flagged.iter().any(|v| v.contains(want)),
            "{want}: {flagged:?}"
        );
    }
    let describe = check_ec2(&form(&[
        ("Action", "DescribeInstances".to_string()),
        ("InstanceId.1", "i-1".to_string()),
        ("MaxResults", "1001".to_string()),
    ]));
    assert!(
        describe.iter().any(|v| v.contains("cannot be combined"))
            && describe.iter().any(|v| v.contains("outside 5..=1000")),
        "{describe:?}"
    );
}
