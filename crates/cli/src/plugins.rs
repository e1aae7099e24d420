//! The four stage checker plugins compiled into this binary, handled alike.

use funnelgate_checker_sdk::{ProbeRegistry, generic_registry};

/// One plugin: its stage, name and how it registers its probe kinds.
#[derive(Clone, Copy, Debug)]
pub struct Plugin {
    /// The stage it serves by default.
    pub stage: &'static str,
    /// The checker's name, reported by `Describe`.
    pub name: &'static str,
    register: fn(&mut ProbeRegistry),
}

impl Plugin {
    /// The generic probe kinds plus this plugin's.
    pub fn registry(&self) -> ProbeRegistry {
        let mut r = generic_registry();
        (self.register)(&mut r);
        r
    }
}

/// Every built-in plugin, bottom of the funnel first.
pub const PLUGINS: [Plugin; 4] = [
    Plugin {
        stage: funnelgate_checker_crm::STAGE,
        name: funnelgate_checker_crm::NAME,
        register: funnelgate_checker_crm::register,
    },
    Plugin {
        stage: funnelgate_checker_automation::STAGE,
        name: funnelgate_checker_automation::NAME,
        register: funnelgate_checker_automation::register,
    },
    Plugin {
        stage: funnelgate_checker_esp::STAGE,
        name: funnelgate_checker_esp::NAME,
        register: funnelgate_checker_esp::register,
    },
    Plugin {
        stage: funnelgate_checker_analytics::STAGE,
        name: funnelgate_checker_analytics::NAME,
        register: funnelgate_checker_analytics::register,
    },
];

/// A built-in stage, as a command-line value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StageArg {
    Crm,
    Automation,
    Esp,
    Analytics,
}

impl StageArg {
    /// The plugin serving this stage.
    pub fn plugin(self) -> Plugin {
        match self {
            StageArg::Crm => PLUGINS[0],
            StageArg::Automation => PLUGINS[1],
            StageArg::Esp => PLUGINS[2],
            StageArg::Analytics => PLUGINS[3],
        }
    }
}
