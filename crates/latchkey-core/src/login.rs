//! The login state machine of SPEC §3 as a pure function: given what is true of the user and
//! the environment's policy, which step comes next.
//!
//! ```text
//! password ──► [password_change_required] ──► [mfa_setup_required|mfa_required] ──► authenticated
//! ```

use std::fmt;

use serde::Serialize;

use crate::model::MfaPolicy;

/// A step of a login, as the API names it in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    PasswordChangeRequired,
    MfaSetupRequired,
    MfaRequired,
    Authenticated,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordChangeRequired => "password_change_required",
            Self::MfaSetupRequired => "mfa_setup_required",
            Self::MfaRequired => "mfa_required",
            Self::Authenticated => "authenticated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::PasswordChangeRequired,
            Self::MfaSetupRequired,
            Self::MfaRequired,
            Self::Authenticated,
        ]
        .into_iter()
        .find(|step| step.as_str() == s)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What decides the next step.
#[allow(clippy::struct_excessive_bools)] // independent facts, each a yes or no
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFacts {
    pub policy: MfaPolicy,
    /// The account was created by invitation or its password was reset, and no new password
    /// has been chosen yet in this login.
    pub password_change_required: bool,
    /// The user has at least one confirmed authenticator.
    pub has_authenticator: bool,
    /// An admin or *enforce MFA* demands MFA at the next login (SPEC §4.6).
    pub mfa_enforced: bool,
    /// A second factor has already been given in this login.
    pub second_factor_done: bool,
    /// The application the user signs into needs a second factor (step-up, SPEC §9): one is
    /// asked, or set up, whatever the policy.
    pub mfa_demanded: bool,
}

/// The next step. With policy `off` no second factor is asked or offered, whatever the user
/// has registered or is marked with; otherwise a user with an authenticator must use it, and
/// one without must set one up when the policy is `required` or they are `mfa_enforced`. A
/// login an application demands a second factor for is treated as under `required`.
pub fn next_step(f: LoginFacts) -> Step {
    if f.password_change_required {
        return Step::PasswordChangeRequired;
    }
    if f.second_factor_done || (f.policy == MfaPolicy::Off && !f.mfa_demanded) {
        return Step::Authenticated;
    }
    if f.has_authenticator {
        return Step::MfaRequired;
    }
    if f.policy == MfaPolicy::Required || f.mfa_enforced || f.mfa_demanded {
        return Step::MfaSetupRequired;
    }
    Step::Authenticated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::fn_params_excessive_bools)]
    fn facts(policy: MfaPolicy, change: bool, has: bool, enforced: bool, done: bool) -> LoginFacts {
        LoginFacts {
            policy,
            password_change_required: change,
            has_authenticator: has,
            mfa_enforced: enforced,
            second_factor_done: done,
            mfa_demanded: false,
        }
    }

    #[test]
    fn the_table_of_spec_section_3() {
        use MfaPolicy::{Off, Optional, Required};
        use Step::*;
        let cases = [
            (
                facts(Required, true, true, false, false),
                PasswordChangeRequired,
            ),
            (facts(Required, false, true, false, false), MfaRequired),
            (
                facts(Required, false, false, false, false),
                MfaSetupRequired,
            ),
            (facts(Required, false, true, false, true), Authenticated),
            (facts(Optional, false, false, false, false), Authenticated),
            (facts(Optional, false, true, false, false), MfaRequired),
            (facts(Optional, false, false, true, false), MfaSetupRequired),
            (facts(Off, false, true, true, false), Authenticated),
            (
                facts(Off, true, false, false, false),
                PasswordChangeRequired,
            ),
        ];
        for (f, expected) in cases {
            assert_eq!(next_step(f), expected, "{f:?}");
        }
    }

    #[test]
    fn an_application_that_demands_a_second_factor_gets_one_under_any_policy() {
        use MfaPolicy::{Off, Optional, Required};
        for policy in [Off, Optional, Required] {
            let demanded = |has, done| LoginFacts {
                mfa_demanded: true,
                ..facts(policy, false, has, false, done)
            };
            assert_eq!(next_step(demanded(false, false)), Step::MfaSetupRequired);
            assert_eq!(next_step(demanded(true, false)), Step::MfaRequired);
            assert_eq!(next_step(demanded(true, true)), Step::Authenticated);
        }
    }

    #[test]
    fn names_round_trip() {
        for s in [
            "password_change_required",
            "mfa_setup_required",
            "mfa_required",
            "authenticated",
        ] {
            assert_eq!(Step::parse(s).map(Step::as_str), Some(s));
        }
        assert_eq!(Step::parse("password"), None);
    }
}
