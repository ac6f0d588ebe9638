//! What `GET /metrics` reports (SPEC §12): counters of login outcomes, lockouts, session checks
//! and forward-auth answers, the hashing pool's gauges, the store's latency histograms and the
//! build, rendered in the Prometheus text format (version 0.0.4).
//!
//! Never a label that a caller chooses: every label value is one of a fixed set of words, or
//! the slug of an environment that exists (a login is counted only once its environment was
//! found). No email, name, token, id or address is ever a label.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::{
        Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use latchkey_core::model::EnvSlug;

use crate::{ServiceError, ServiceResult, store::CounterKind};

/// The login steps, as they are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoginStep {
    /// Email and password.
    Password,
    /// A setup link opened a login.
    SetupLink,
    /// A new password chosen.
    NewPassword,
    /// A TOTP or recovery code given.
    SecondFactor,
    /// A secret offered for MFA setup.
    MfaSetup,
    /// The first authenticator confirmed.
    MfaConfirm,
}

impl LoginStep {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::SetupLink => "setup_link",
            Self::NewPassword => "new_password",
            Self::SecondFactor => "second_factor",
            Self::MfaSetup => "mfa_setup",
            Self::MfaConfirm => "mfa_confirm",
        }
    }
}

/// How a login step ended, as it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoginResult {
    /// The login is complete: a session was issued.
    Authenticated,
    /// The step was accepted and the login goes on to another step.
    NextStep,
    /// Wrong email or password (one word for both, as the answer).
    InvalidCredentials,
    /// A wrong, replayed or used second factor.
    InvalidCode,
    /// Refused unevaluated: the account is locked or the address throttled.
    TooManyAttempts,
    /// The login or the setup link is no longer usable.
    Expired,
    /// Malformed input, a weak password, a step out of order, a refusal by policy.
    Refused,
    /// The hashing pool was full.
    Busy,
    /// The database could not be used.
    Unavailable,
    /// Anything else (a bug).
    Error,
}

impl LoginResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::NextStep => "next_step",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidCode => "invalid_code",
            Self::TooManyAttempts => "too_many_attempts",
            Self::Expired => "expired",
            Self::Refused => "refused",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
            Self::Error => "error",
        }
    }

    /// The result of a failed step; `None` when the environment is unknown (not counted: its
    /// slug is the caller's word, not an environment's).
    fn of_error(e: &ServiceError) -> Option<Self> {
        Some(match e {
            ServiceError::NotFound("environment") => return None,
            ServiceError::InvalidCredentials => Self::InvalidCredentials,
            ServiceError::InvalidCode => Self::InvalidCode,
            ServiceError::TooManyAttempts { .. } => Self::TooManyAttempts,
            ServiceError::LoginExpired | ServiceError::LinkExpired => Self::Expired,
            ServiceError::NotFound(_)
            | ServiceError::Invalid(_)
            | ServiceError::WeakPassword(_)
            | ServiceError::WrongStep(_)
            | ServiceError::Refused { .. }
            | ServiceError::Conflict(_)
            | ServiceError::Forbidden(_)
            | ServiceError::Unauthenticated => Self::Refused,
            ServiceError::Busy => Self::Busy,
            ServiceError::Unavailable(_) => Self::Unavailable,
            ServiceError::Internal(_) => Self::Error,
        })
    }
}

/// What a successful step's answer says about the login.
pub trait StepAnswer {
    fn result(&self) -> LoginResult;
}

/// How a session check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// A live session.
    Valid,
    /// No such session (malformed, unknown or already ended).
    Unknown,
    /// Found, and ended by this check (past its max age or idle timeout, or its user is no
    /// longer active).
    Expired,
    /// The database could not be used.
    Unavailable,
}

impl SessionCheck {
    const ALL: [Self; 4] = [Self::Valid, Self::Unknown, Self::Expired, Self::Unavailable];

    fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A forward-auth answer (`/auth/verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardAuth {
    /// 200: a live session of the environment asked about.
    Allowed,
    /// 401.
    Denied,
    /// 302 to the environment's login page.
    Redirected,
    /// 503: the database could not be used.
    Unavailable,
}

impl ForwardAuth {
    const ALL: [Self; 4] = [
        Self::Allowed,
        Self::Denied,
        Self::Redirected,
        Self::Unavailable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Redirected => "redirected",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The hashing pool's state at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Hashing threads.
    pub workers: u64,
    /// Hashes being computed now.
    pub busy: u64,
    /// Admitted and waiting for a thread.
    pub queued: u64,
    /// Requests refused because the pool stayed full (since start).
    pub refused: u64,
}

impl PoolState {
    fn render(self, out: &mut String) {
        let pool = self;
        for (name, kind, text, value) in [
            (
                "latchkey_hashing_workers",
                "gauge",
                "Password-hashing threads.",
                pool.workers,
            ),
            (
                "latchkey_hashing_busy",
                "gauge",
                "Password hashes being computed now.",
                pool.busy,
            ),
            (
                "latchkey_hashing_queued",
                "gauge",
                "Password hashes admitted and waiting for a thread.",
                pool.queued,
            ),
            (
                "latchkey_hashing_refused_total",
                "counter",
                "Requests refused with 503 because the hashing pool stayed full.",
                pool.refused,
            ),
        ] {
            help(out, name, kind, text);
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// The upper bounds (seconds) of the store latency buckets: 50 µs to 2.5 s.
const BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    2.5,
];

/// A latency histogram: counts per bucket (not cumulative until rendered), the sum in
/// nanoseconds (the count is the last bucket's cumulative sum). Lock-free: an observation is
/// two relaxed additions.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        #[allow(clippy::cast_precision_loss)] // nanoseconds to seconds: f64 is what is shown
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// One latency histogram per storage operation (the trait method's name), made at its first
/// use. An observation takes a shared lock only; the first of an operation, a write lock.
#[derive(Debug, Default)]
pub struct StoreLatency {
    ops: RwLock<HashMap<&'static str, Histogram>>,
    /// Operations run again after a transient database failure, by operation.
    retries: Mutex<BTreeMap<&'static str, u64>>,
}

impl StoreLatency {
    /// An operation is run again after a transient failure (a conflict, a broken connection).
    pub fn count_retry(&self, op: &'static str) {
        *self
            .retries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(op)
            .or_default() += 1;
    }

    pub fn observe(&self, op: &'static str, elapsed: Duration) {
        {
            let ops = self.ops.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = ops.get(op) {
                h.observe(elapsed);
                return;
            }
        }
        let mut ops = self.ops.write().unwrap_or_else(PoisonError::into_inner);
        ops.entry(op).or_default().observe(elapsed);
    }

    fn render(&self, out: &mut String) {
        {
            let retries = self.retries.lock().unwrap_or_else(PoisonError::into_inner);
            out.push_str(
                "# HELP latchkey_store_retries_total Storage operations run again after a \
                 transient database failure (a deadlock, a serialization conflict, a broken \
                 connection).\n# TYPE latchkey_store_retries_total counter\n",
            );
            for (op, n) in retries.iter() {
                let _ = writeln!(out, "latchkey_store_retries_total{{op=\"{op}\"}} {n}");
            }
        }
        let ops = self.ops.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<&&str> = ops.keys().collect();
        names.sort();
        for name in names {
            if let Some(h) = ops.get(*name) {
                h.render(
                    out,
                    "latchkey_store_operation_duration_seconds",
                    &format!("op=\"{name}\""),
                );
            }
        }
    }
}

/// Environments counted apart at most; past that, further ones are counted as `_other` (a
/// deployment with more environments still gets correct totals, and the series stay bounded).
const MAX_ENVS: usize = 1000;

/// The counters of one process (every node has its own; Prometheus adds them up).
#[derive(Debug)]
pub struct Metrics {
    /// The label of each environment seen to exist: its slug, or `_other` past [`MAX_ENVS`].
    envs: Mutex<HashMap<String, String>>,
    logins: Mutex<BTreeMap<(String, LoginStep, LoginResult), u64>>,
    lockouts: Mutex<BTreeMap<(String, &'static str), u64>>,
    session_checks: [AtomicU64; SessionCheck::ALL.len()],
    forward_auth: [AtomicU64; ForwardAuth::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            envs: Mutex::new(HashMap::new()),
            logins: Mutex::new(BTreeMap::new()),
            lockouts: Mutex::new(BTreeMap::new()),
            session_checks: Default::default(),
            forward_auth: Default::default(),
        }
    }

    /// Whether `env` was already counted (so it is known to exist).
    pub fn counts_env(&self, env: &EnvSlug) -> bool {
        let envs = self.envs.lock().unwrap_or_else(PoisonError::into_inner);
        envs.contains_key(env.as_str())
    }

    /// The label of `env`, an environment known to exist: its slug, or `_other` once
    /// [`MAX_ENVS`] environments have labels of their own.
    fn env_label(&self, env: &EnvSlug) -> String {
        let mut envs = self.envs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(label) = envs.get(env.as_str()) {
            return label.clone();
        }
        let label = if envs.len() < MAX_ENVS {
            env.as_str().to_owned()
        } else {
            "_other".to_owned()
        };
        envs.insert(env.as_str().to_owned(), label.clone());
        label
    }

    /// Count a login step's outcome in `env`, an environment the caller checked exists.
    pub fn login<T: StepAnswer>(&self, env: &EnvSlug, step: LoginStep, result: &ServiceResult<T>) {
        let result = match result {
            Ok(answer) => answer.result(),
            Err(e) => match LoginResult::of_error(e) {
                Some(r) => r,
                None => return,
            },
        };
        let env = self.env_label(env);
        let mut logins = self.logins.lock().unwrap_or_else(PoisonError::into_inner);
        *logins.entry((env, step, result)).or_insert(0) += 1;
    }

    /// Count a lock caused by a failure on a counter of `kind` in `env`.
    pub fn lockout(&self, env: &EnvSlug, kind: CounterKind) {
        let env = self.env_label(env);
        let mut lockouts = self.lockouts.lock().unwrap_or_else(PoisonError::into_inner);
        *lockouts.entry((env, kind.as_str())).or_insert(0) += 1;
    }

    pub fn session_check(&self, check: SessionCheck) {
        self.session_checks[check as usize].fetch_add(1, Relaxed);
    }

    pub fn forward_auth(&self, answer: ForwardAuth) {
        self.forward_auth[answer as usize].fetch_add(1, Relaxed);
    }

    /// The Prometheus text of every series.
    pub fn render(&self, pool: PoolState, store: Option<&StoreLatency>) -> String {
        let mut out = String::with_capacity(8 * 1024);
        help(
            &mut out,
            "latchkey_build_info",
            "gauge",
            "The running build (always 1).",
        );
        let _ = writeln!(
            out,
            "latchkey_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        let logins: Vec<(String, u64)> = {
            let logins = self.logins.lock().unwrap_or_else(PoisonError::into_inner);
            logins
                .iter()
                .map(|((env, step, result), n)| {
                    let (step, result) = (step.as_str(), result.as_str());
                    (
                        format!("env=\"{env}\",step=\"{step}\",result=\"{result}\""),
                        *n,
                    )
                })
                .collect()
        };
        counters(
            &mut out,
            "latchkey_login_steps_total",
            "Login steps by environment, step and result.",
            logins,
        );
        let lockouts: Vec<(String, u64)> = {
            let lockouts = self.lockouts.lock().unwrap_or_else(PoisonError::into_inner);
            lockouts
                .iter()
                .map(|((env, counter), n)| (format!("env=\"{env}\",counter=\"{counter}\""), *n))
                .collect()
        };
        counters(
            &mut out,
            "latchkey_lockouts_total",
            "Locks caused by repeated failures, by environment and counter.",
            lockouts,
        );
        counters(
            &mut out,
            "latchkey_session_checks_total",
            "Session checks (API, pages, forward-auth) by result.",
            SessionCheck::ALL.map(|c| {
                let n = self.session_checks[c as usize].load(Relaxed);
                (format!("result=\"{}\"", c.as_str()), n)
            }),
        );
        counters(
            &mut out,
            "latchkey_forward_auth_total",
            "Forward-auth answers (/auth/verify) by answer.",
            ForwardAuth::ALL.map(|a| {
                let n = self.forward_auth[a as usize].load(Relaxed);
                (format!("answer=\"{}\"", a.as_str()), n)
            }),
        );

        pool.render(&mut out);

        help(
            &mut out,
            "latchkey_store_operation_duration_seconds",
            "histogram",
            "Time taken by each storage operation, queueing included.",
        );
        if let Some(store) = store {
            store.render(&mut out);
        }
        out
    }
}

/// A counter family: its HELP and TYPE lines, then a line for each (labels, count).
fn counters(
    out: &mut String,
    name: &str,
    text: &str,
    rows: impl IntoIterator<Item = (String, u64)>,
) {
    help(out, name, "counter", text);
    for (labels, n) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {n}");
    }
}

fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(out, "# HELP {name} {text}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factors::MfaOffer;

    fn slug(s: &str) -> EnvSlug {
        EnvSlug::parse(s).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn login_outcomes_are_counted_by_env_step_and_result() {
        let m = Metrics::new();
        let env = slug("prod");
        let wrong: ServiceResult<MfaOffer> = Err(ServiceError::InvalidCredentials);
        m.login(&env, LoginStep::Password, &wrong);
        m.login(&env, LoginStep::Password, &wrong);
        let unknown_env: ServiceResult<MfaOffer> = Err(ServiceError::NotFound("environment"));
        m.login(&slug("nope"), LoginStep::Password, &unknown_env);
        m.lockout(&env, CounterKind::Password);
        let text = m.render(PoolState::default(), None);
        assert!(text.contains(
            "latchkey_login_steps_total{env=\"prod\",step=\"password\",result=\"invalid_credentials\"} 2"
        ), "{text}");
        assert!(
            !text.contains("nope"),
            "an unknown environment is no label: {text}"
        );
        assert!(text.contains("latchkey_lockouts_total{env=\"prod\",counter=\"password\"} 1"));
        assert!(text.contains("latchkey_build_info{version=\""));
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets() {
        let latency = StoreLatency::default();
        latency.observe("ping", Duration::from_micros(30));
        latency.observe("ping", Duration::from_millis(3));
        latency.observe("ping", Duration::from_secs(9));
        let mut out = String::new();
        latency.render(&mut out);
        let line = |le: &str| {
            format!("latchkey_store_operation_duration_seconds_bucket{{op=\"ping\",le=\"{le}\"}}")
        };
        assert!(out.contains(&format!("{} 1\n", line("0.00005"))), "{out}");
        assert!(out.contains(&format!("{} 2\n", line("0.005"))), "{out}");
        assert!(out.contains(&format!("{} 2\n", line("2.5"))), "{out}");
        assert!(out.contains(&format!("{} 3\n", line("+Inf"))), "{out}");
        assert!(out.contains("latchkey_store_operation_duration_seconds_count{op=\"ping\"} 3"));
    }

    #[test]
    fn environments_past_the_bound_share_one_label() {
        let m = Metrics::new();
        let ok: ServiceResult<MfaOffer> = Err(ServiceError::InvalidCode);
        for i in 0..MAX_ENVS + 5 {
            m.login(&slug(&format!("e{i}")), LoginStep::SecondFactor, &ok);
        }
        let text = m.render(PoolState::default(), None);
        let series = text
            .lines()
            .filter(|l| l.starts_with("latchkey_login_steps_total{"))
            .count();
        assert_eq!(series, MAX_ENVS + 1, "the bound, plus `_other`");
        assert!(text.contains("env=\"_other\",step=\"second_factor\",result=\"invalid_code\"} 5"));
    }
}
