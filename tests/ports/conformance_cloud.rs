//! The `CloudApi` conformance suite, written once against the trait and run
//! against the simulator and against the EC2 adapter on moto's server.

use crate::support;

use async_trait::async_trait;
use k3s_autoscaler::adapters::ec2::Ec2Fleet;
use k3s_autoscaler::adapters::user_data::DEFAULT_TEMPLATE;
use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ScenarioKind;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What a case needs besides the port: instances that are not ours.
#[async_trait]
trait Fixture: Send + Sync {
    fn cloud(&self) -> Arc<dyn CloudApi>;
    /// An instance with no managed tags.
    async fn add_unmanaged(&self) -> String;
    /// An instance of another cluster (managed tags, other cluster name).
    async fn add_other_cluster(&self) -> String;
    /// The K3s server's id.
    async fn master_id(&self) -> String;
    async fn is_live(&self, id: &str) -> bool;
    /// Let a launched instance boot far enough to have console output.
    async fn let_boot(&self);
}

fn launch_request(op: &str, count: u32) -> LaunchRequest {
    LaunchRequest {
        op_id: op.into(),
        client_token: format!("k3sa-{op}-0"),
        count,
        instance_type: "t3.large".into(),
        subnet: None,
        master_address: "10.0.0.5".into(),
        k3s_version: "v1.33.1+k3s1".into(),
    }
}

fn ids(instances: &[Instance]) -> BTreeSet<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}

mod cases {
    use super::*;

    pub async fn launching_twice_for_one_op_returns_the_same_instances(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let before = ids(&cloud.managed_instances().await.unwrap());
        let first = cloud.launch(&launch_request("op-1", 2)).await.unwrap();
        assert_eq!(first.len(), 2);
        assert!(
            first
                .iter()
                .all(|i| i.managed && i.op_id.as_deref() == Some("op-1")),
            "{first:?}"
        );
        let again = cloud.launch(&launch_request("op-1", 2)).await.unwrap();
        assert_eq!(ids(&again), ids(&first), "a retry must not launch twice");
        assert_eq!(
            ids(&cloud.instances_for_op("op-1").await.unwrap()),
            ids(&first)
        );
        let after = ids(&cloud.managed_instances().await.unwrap());
        assert_eq!(
            after.difference(&before).cloned().collect::<BTreeSet<_>>(),
            ids(&first)
        );
        // Another op launches its own.
        let other = cloud.launch(&launch_request("op-2", 1)).await.unwrap();
        assert!(ids(&other).is_disjoint(&ids(&first)));
    }

    /// EC2's idempotency: the token names one launch. Sent again with
    /// other parameters (another type here; another subnet is another zone)
    /// it is refused, and nothing more is launched.
    pub async fn a_token_reused_with_other_parameters_is_refused(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let first = cloud.launch(&launch_request("op-5", 1)).await.unwrap();
        let mut other = launch_request("op-5", 1);
        other.instance_type = "m5.large".into();
        let refused = cloud.launch(&other).await.unwrap_err();
        assert!(matches!(refused, PortError::TokenReused(_)), "{refused}");
        assert_eq!(
            ids(&cloud.instances_for_op("op-5").await.unwrap()),
            ids(&first),
            "nothing more was launched"
        );
    }

    pub async fn only_live_managed_workers_of_this_cluster_are_listed(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let unmanaged = f.add_unmanaged().await;
        let foreign = f.add_other_cluster().await;
        let master = f.master_id().await;
        let mine = cloud.launch(&launch_request("op-3", 2)).await.unwrap();
        let listed = ids(&cloud.managed_instances().await.unwrap());
        for other in [&unmanaged, &foreign, &master] {
            assert!(!listed.contains(other), "{other} is not a managed worker");
        }
        assert!(ids(&mine).is_subset(&listed));
        cloud.terminate(&[mine[0].id.clone()]).await.unwrap();
        let listed = ids(&cloud.managed_instances().await.unwrap());
        assert!(
            !listed.contains(&mine[0].id),
            "a terminated worker is not live"
        );
        assert!(listed.contains(&mine[1].id));
    }

    pub async fn terminate_refuses_anything_unmanaged_before_any_change(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let mine = cloud.launch(&launch_request("op-4", 1)).await.unwrap();
        for other in [
            f.add_unmanaged().await,
            f.add_other_cluster().await,
            f.master_id().await,
        ] {
            let refused = cloud
                .terminate(&[mine[0].id.clone(), other.clone()])
                .await
                .unwrap_err();
            assert!(matches!(refused, PortError::Refused(_)), "{refused}");
            assert!(f.is_live(&other).await, "{other} was touched");
            assert!(
                f.is_live(&mine[0].id).await,
                "the managed one was terminated despite the refusal"
            );
        }
        let missing = cloud
            .terminate(&["i-0000000000000dead".to_string()])
            .await
            .unwrap_err();
        assert!(matches!(missing, PortError::NotFound(_)), "{missing}");
    }

    /// What a destructive step asks before it treats an instance as gone:
    /// by id, in any state, whatever its tags; an id the cloud does not
    /// know is `None`, not an error.
    pub async fn an_instance_is_found_by_id_in_any_state(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let mine = cloud.launch(&launch_request("op-6", 1)).await.unwrap();
        let id = mine[0].id.clone();
        let found = cloud.instance(&id).await.unwrap().expect("launched");
        assert!(found.managed && found.state.is_live(), "{found:?}");
        let unmanaged = f.add_unmanaged().await;
        let other = cloud.instance(&unmanaged).await.unwrap().expect("exists");
        assert!(!other.managed, "{other:?}");
        cloud.terminate(std::slice::from_ref(&id)).await.unwrap();
        let gone = cloud.instance(&id).await.unwrap().expect("still described");
        assert!(
            matches!(
                gone.state,
                InstanceState::ShuttingDown | InstanceState::Terminated
            ),
            "{gone:?}"
        );
        assert_eq!(cloud.instance("i-0000000000000dead").await.unwrap(), None);
    }

    /// GetConsoleOutput: once the instance has booted, the answer is the
    /// boot log as text (decoded from EC2's base64: moto answers a fixed
    /// "Linux version 2.6.16-xenU" log, the simulator its own), and an
    /// unknown instance is an error, not text.
    pub async fn the_console_output_of_an_instance_is_decoded_text(f: Box<dyn Fixture>) {
        let cloud = f.cloud();
        let launched = cloud
            .launch(&launch_request("op-console", 1))
            .await
            .unwrap();
        f.let_boot().await;
        let text = cloud
            .console_output(&launched[0].id)
            .await
            .unwrap()
            .expect("console output once booted");
        assert!(text.contains("Linux version"), "not a boot log: {text:.80}");
        assert!(
            !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='),
            "still base64: {text:.80}"
        );
        assert!(cloud.console_output("i-0000000000000dead").await.is_err());
    }

    pub async fn the_master_is_found_by_its_tag(f: Box<dyn Fixture>) {
        let master = f.cloud().master().await.unwrap().expect("a master");
        assert_eq!(master.id, f.master_id().await);
        assert!(!master.managed);
        assert!(master.private_ip.is_some());
    }
}

struct SimFixture {
    demo: k3s_autoscaler::harness::demo::Demo,
}

#[async_trait]
impl Fixture for SimFixture {
    fn cloud(&self) -> Arc<dyn CloudApi> {
        self.demo.ports.cloud.clone()
    }
    async fn add_unmanaged(&self) -> String {
        k3s_autoscaler::sim::ports::lock(&self.demo.world).add_foreign_instance()
    }
    async fn add_other_cluster(&self) -> String {
        // The simulator has one cluster: another cluster's worker is, to
        // it, simply not managed.
        self.add_unmanaged().await
    }
    async fn master_id(&self) -> String {
        self.demo.ports.cloud.master().await.unwrap().unwrap().id
    }
    async fn let_boot(&self) {
        // EC2 publishes console output late; the simulator after 30 s.
        self.demo.clock.advance(std::time::Duration::from_secs(60));
    }
    async fn is_live(&self, id: &str) -> bool {
        let world = k3s_autoscaler::sim::ports::lock(&self.demo.world);
        world
            .fleet
            .instances
            .get(id)
            .is_some_and(|i| i.state.is_live())
    }
}

struct MotoFixture {
    fleet: Arc<Ec2Fleet>,
    ec2: aws_sdk_ec2::Client,
    cluster: String,
    master: String,
    /// moto behind the proxy that answers like EC2 (ClientToken, capacity).
    strict: support::strict_ec2::StrictEc2,
}

impl Drop for MotoFixture {
    fn drop(&mut self) {
        let refused = self.strict.violations();
        if !std::thread::panicking() {
            assert!(
                refused.is_empty(),
                "requests EC2 refuses:\n{}",
                refused.join("\n")
            );
        }
    }
}

impl MotoFixture {
    async fn new() -> Self {
        let strict = support::strict_ec2::StrictEc2::start(&support::moto_url()).await;
        let sdk = support::sdk_at(&strict.url).await;
        let cluster = support::unique("conf-cloud");
        let mut config = support::moto_config(&cluster, "unused");
        // A master tag of our own, so parallel tests never see each other's.
        config.ec2.master_tag = format!("k3s-autoscaler/master={cluster}");
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let master = run(&ec2, &[("k3s-autoscaler/master", &cluster)]).await;
        MotoFixture {
            fleet: Arc::new(Ec2Fleet::new(
                &sdk,
                &cluster,
                &config.ec2,
                DEFAULT_TEMPLATE.into(),
            )),
            ec2,
            cluster,
            master,
            strict,
        }
    }
}

async fn run(ec2: &aws_sdk_ec2::Client, tags: &[(&str, &str)]) -> String {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    let out = ec2
        .run_instances()
        .image_id(support::MOTO_AMI)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

#[async_trait]
impl Fixture for MotoFixture {
    fn cloud(&self) -> Arc<dyn CloudApi> {
        self.fleet.clone()
    }
    async fn add_unmanaged(&self) -> String {
        run(&self.ec2, &[("Name", "not-ours")]).await
    }
    async fn add_other_cluster(&self) -> String {
        let other = format!("{}-other", self.cluster);
        run(
            &self.ec2,
            &[
                ("k3s-autoscaler/cluster", &other),
                ("k3s-autoscaler/role", "worker"),
            ],
        )
        .await
    }
    async fn master_id(&self) -> String {
        self.master.clone()
    }
    async fn let_boot(&self) {
        // moto has console output for an instance at once.
    }
    async fn is_live(&self, id: &str) -> bool {
        let out = self
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .any(|i| {
                matches!(
                    i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                    Some("pending" | "running")
                )
            })
    }
}

async fn sim() -> Box<dyn Fixture> {
    let (_, demo) = support::demo(ScenarioKind::Steady, 1, false);
    Box::new(SimFixture { demo })
}

async fn moto() -> Box<dyn Fixture> {
    Box::new(MotoFixture::new().await)
}

async fn with_sim(case: impl AsyncFnOnce(Box<dyn Fixture>), _: ()) {
    case(sim().await).await
}

async fn with_moto(case: impl AsyncFnOnce(Box<dyn Fixture>), _: ()) {
    case(moto().await).await
}

conformance! {
    backends { on_simulator => with_sim, on_ec2_moto => with_moto }
    cases {
        launching_twice_for_one_op_returns_the_same_instances,
        only_live_managed_workers_of_this_cluster_are_listed,
        terminate_refuses_anything_unmanaged_before_any_change,
        the_master_is_found_by_its_tag,
        a_token_reused_with_other_parameters_is_refused,
        an_instance_is_found_by_id_in_any_state,
        the_console_output_of_an_instance_is_decoded_text,
    }
}

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
