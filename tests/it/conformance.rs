//! The conformance scenarios of the wire contract: every `*.json` in
//! `tests/scenarios/` (except `_fixtures.json`) runs against a real
//! `cpor serve --manual-clock` on its own prefix and empty data dir, over the
//! shared NATS server. The step language is `tests/scenarios/README.md`;
//! the runner is `support::scenario`.
//!
//! A failing scenario prints the step, expected vs actual, and the tail of
//! the service log, and keeps the service's temp dir; its streams are
//! deleted unless `CPOR_TEST_KEEP` is set.
//!
//! `tests/scenarios/` is a byte-identical copy of the shared
//! `../shared/scenarios/`; `scenarios_in_sync_with_shared` checks it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::jetstream::delete_streams;
use crate::support::scenario::{Fixtures, Runner, Scenario};
use crate::support::{unique_prefix, NatsServer, Service, ServiceOptions};

/// The project's copy of the scenarios.
fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// The shared originals, when this checkout sits next to them.
fn shared_scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/scenarios")
}

const FIXTURES_FILE: &str = "_fixtures.json";

/// Names of the scenario files (without `.json`) in the project's copy.
fn scenario_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .unwrap_or_else(|e| panic!("{}: {e}", scenarios_dir().display()))
        .map(|entry| entry.expect("read scenarios dir").file_name())
        .filter_map(|name| name.to_str().map(str::to_string))
        .filter(|name| name.ends_with(".json") && name != FIXTURES_FILE)
        .map(|name| name.trim_end_matches(".json").to_string())
        .collect();
    names.sort();
    names
}

fn load_fixtures() -> Fixtures {
    Fixtures::load(&scenarios_dir().join(FIXTURES_FILE)).unwrap_or_else(|e| panic!("{e}"))
}

/// The project's own scenarios, in the same language: flows the public
/// scenarios do not cover (incumbents, partner-response deadlines, disputes,
/// refusals). They use the shared fixtures.
fn project_scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios-project")
}

/// Runs one scenario file on a fresh prefix and data dir.
async fn run_scenario(name: &str) {
    run_scenario_file(&scenarios_dir().join(format!("{name}.json"))).await;
}

async fn run_scenario_file(path: &Path) {
    let fixtures = load_fixtures();
    let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
    scenario
        .check_fixtures(&fixtures)
        .unwrap_or_else(|e| panic!("{e}"));

    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;

    let result = Runner::new(&scenario.name, &client, &prefix, &fixtures)
        .with_service(&mut service)
        .run(&scenario.steps)
        .await;
    let keep = std::env::var_os("CPOR_TEST_KEEP").is_some();
    if let Err(message) = result {
        if !keep {
            delete_streams(&async_nats::jetstream::new(client), &prefix).await;
        }
        let tail = service.take_log_tail(60);
        panic!(
            "{message}\n--- cpor log tail ({}) ---\n{tail}",
            service.log_path().display()
        );
    }
    // The contract's shutdown: SIGTERM → exit 0.
    service.terminate().await;
    // Leave the shared server as we found it.
    if !keep {
        delete_streams(&async_nats::jetstream::new(client), &prefix).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn project_scenarios() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(project_scenarios_dir())
        .expect("tests/scenarios-project exists")
        .map(|entry| entry.expect("read dir").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no project scenarios found");
    for path in paths {
        run_scenario_file(&path).await;
    }
}

/// One test per scenario file; `every_scenario_file_has_a_test` makes sure
/// this list and the directory agree.
macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {
        const LISTED: &[&str] = &[$(stringify!($name)),*];

        mod scenario {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::run_scenario(stringify!($name)).await;
                }
            )*
        }
    };
}

scenario_tests!(
    activity_not_allowed,
    bad_input,
    competing_claims_arbitration,
    domain_tenant_mismatch,
    idempotent_submit,
    partner_scope,
    poe_request_and_answer,
    restart_keeps_everything,
    review_deadline_met_by_comment,
    review_deadline_missed,
    scoped_queries,
    submit_and_approve,
    subscription_is_csp,
    subscription_not_provisioned,
);

#[test]
fn every_scenario_file_has_a_test() {
    let files = scenario_files();
    let unlisted: Vec<&String> = files
        .iter()
        .filter(|f| !LISTED.contains(&f.as_str()))
        .collect();
    let missing: Vec<&&str> = LISTED
        .iter()
        .filter(|name| !files.iter().any(|f| f == *name))
        .collect();
    assert!(
        unlisted.is_empty(),
        "scenario files without a test; add them to scenario_tests!(…) in {}: {unlisted:?}",
        file!()
    );
    assert!(
        missing.is_empty(),
        "scenario_tests!(…) lists scenarios that have no file in {}: {missing:?}",
        scenarios_dir().display()
    );
}

/// Every scenario parses in the step language, its `name` is its file name,
/// and every fixture it uses exists. Needs no service.
#[test]
fn scenarios_are_well_formed() {
    let fixtures = load_fixtures();
    assert!(
        fixtures.sets.contains_key("standard"),
        "fixture `standard` is missing"
    );
    for name in scenario_files() {
        let scenario = Scenario::load(&scenarios_dir().join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            scenario.name, name,
            "scenario `name` differs from its file name"
        );
        assert!(!scenario.steps.is_empty(), "scenario {name} has no steps");
        scenario
            .check_fixtures(&fixtures)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// `tests/scenarios/` is byte-identical to `../shared/scenarios/` when that
/// exists (a checkout without it skips).
#[test]
fn scenarios_in_sync_with_shared() {
    let shared = shared_scenarios_dir();
    if !shared.is_dir() {
        eprintln!(
            "note: {} does not exist; skipping the scenario sync check",
            shared.display()
        );
        return;
    }
    let ours = read_dir_files(&scenarios_dir());
    let theirs = read_dir_files(&shared);
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&ours),
        names(&theirs),
        "tests/scenarios/ and {} hold different files; copy them over: cp {}/* {}/",
        shared.display(),
        shared.display(),
        scenarios_dir().display()
    );
    let differing: Vec<&String> = ours
        .iter()
        .filter(|(name, bytes)| theirs.get(*name) != Some(bytes))
        .map(|(name, _)| name)
        .collect();
    assert!(
        differing.is_empty(),
        "these scenario files differ from {}; copy them over: {differing:?}",
        shared.display()
    );
}

fn read_dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("read dir entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, bytes)
        })
        .collect()
}
