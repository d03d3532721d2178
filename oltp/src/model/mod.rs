//! Domain types of the operational CRM. No I/O here: ids, money, enums, and the rules that need no
//! database (id generation, stage-policy checks).

mod authz;
pub mod dedupe;
mod enums;
mod ids;
mod money;
pub mod pricing;
mod stage;

pub use authz::{Action, RESOURCES, Scope, default_matrix, default_scope, uses_team_scope};
pub use enums::*;
pub use ids::*;
pub use money::{Currency, Money};
pub use stage::{StageRule, TransitionOutcome, TransitionRefusal, check_transition};
