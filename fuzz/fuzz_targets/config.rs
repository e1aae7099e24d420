//! The coordinator's configuration: TOML text plus the `FUNNELGATE__…` environment overlay,
//! through `funnelgate_coordinator::config::from_str` (what `load` does after reading the file),
//! then `validate()` and `hash()`.
//!
//! Input: TOML text; optionally a line `#--env--` followed by `KEY=VALUE` lines (the environment).
//! Invariants: no panic; a configuration that validates survives a JSON round trip unchanged and
//! hashes the same afterwards.
#![no_main]

use funnelgate_coordinator::config::{Config, from_str};
use funnelgate_fuzz::{env_lines, split_at_marker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env) = split_at_marker(text, "#--env--");
    let env = env.map(env_lines).unwrap_or_default();
    let Ok(config) = from_str(toml, config::FileFormat::Toml, "fuzz.toml", &env) else {
        return;
    };
    let hash = config.hash();
    if config.validate().is_err() {
        return;
    }
    let json = serde_json::to_value(&config).expect("a valid config serialises");
    let back: Config = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("a valid config does not read back from its JSON {json}: {e}"));
    // Which keys came from the environment is provenance for error messages, not configuration:
    // it is not serialised, so the round trip is compared without it.
    let mut expected = config.clone();
    expected.env_overrides.clear();
    assert_eq!(back, expected, "a valid config changed in a JSON round trip");
    assert_eq!(
        back.hash(),
        hash,
        "the config hash changed in a JSON round trip"
    );
});
