//! The fixture every flow runs on: the service over one store, an environment `prod` (MFA
//! required), a test clock at [`T0`], and the helpers that walk a person through a login.

use std::sync::Arc;

use latchkey_core::{
    SecretString,
    login::Step,
    model::{Email, EnvSlug, MfaPolicy, Role},
    password::HashCost,
    sealing::{Keyring, SealingKey},
    totp::{self, TotpParams, TotpSecret},
};
use latchkey_service::{
    Actor, Caller, Origin, Service, ServiceConfig, ServiceError, TestClock, authz::Operator,
    environments::EnvironmentPatch, factors::FactorInput, login::LoginAnswer,
};
use latchkey_store::AnyStore;
use latchkey_testkit::ScratchDatabase;

/// A Tuesday in 2027, at the start of a TOTP step.
pub(crate) const T0: i64 = 1_800_000_000;
pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) struct Fixture {
    pub(crate) service: Service<AnyStore>,
    pub(crate) clock: TestClock,
    pub(crate) env: EnvSlug,
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) _database: Option<ScratchDatabase>,
}

/// Someone who finished their first login: their authenticator and their session's token.
pub(crate) struct Person {
    pub(crate) email: String,
    pub(crate) secret: TotpSecret,
    pub(crate) params: TotpParams,
    pub(crate) session: String,
}

pub(crate) fn config() -> ServiceConfig {
    let mut c = ServiceConfig::new("https://auth.example.com/");
    c.hash_cost = HashCost::insecure_for_tests();
    c
}

/// A browser at one address (no device cookie), as every login here comes from.
pub(crate) fn caller() -> Caller {
    Caller {
        actor: Actor::Anonymous,
        origin: Origin {
            ip: Some("192.0.2.7".into()),
            ..Origin::local()
        },
    }
}

pub(crate) fn secret(s: &str) -> SecretString {
    SecretString::new(s.to_owned())
}

impl Fixture {
    /// The service on `store`, an environment `prod` with MFA `policy`, at [`T0`].
    pub(crate) async fn start(
        store: AnyStore,
        dir: tempfile::TempDir,
        database: Option<ScratchDatabase>,
    ) -> Self {
        let clock = TestClock::at(T0);
        let service = Service::start(
            store,
            Arc::new(clock.clone()),
            Keyring::new(SealingKey::generate().unwrap()),
            config(),
        )
        .await
        .unwrap();
        let env = EnvSlug::parse("prod").unwrap();
        service
            .create_environment(
                &Operator::local_cli(),
                env.clone(),
                None,
                Some(MfaPolicy::Required),
            )
            .await
            .unwrap();
        Self {
            service,
            clock,
            env,
            _dir: dir,
            _database: database,
        }
    }

    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("flows.db").display());
        let store = AnyStore::open(&url, 4).await.unwrap();
        Self::start(store, dir, None).await
    }

    /// `None` (skip) when PostgreSQL is not here and not required.
    pub(crate) async fn postgres() -> Option<Self> {
        let database = ScratchDatabase::create("flows").await?;
        let store = AnyStore::open(&database.url, 8).await.unwrap();
        Some(Self::start(store, tempfile::tempdir().unwrap(), Some(database)).await)
    }

    pub(crate) async fn patch(&self, patch: EnvironmentPatch) {
        self.service
            .update_environment(&Operator::local_cli(), &self.env, patch)
            .await
            .unwrap();
    }

    pub(crate) fn code(&self, p: &Person) -> SecretString {
        secret(&totp::code_at(&p.secret, &p.params, self.clock_now()))
    }

    pub(crate) fn clock_now(&self) -> i64 {
        latchkey_service::Clock::now(&self.clock)
    }

    /// Invite `email`, then walk their setup link: a password, then (under a required policy)
    /// an authenticator whose first code ends the login.
    pub(crate) async fn enrol(&self, email: &str) -> Person {
        let s = &self.service;
        let admin = s.cli_admin(&self.env).await.unwrap();
        let (_, link) = s
            .create_user(&admin, Email::parse(email).unwrap(), None, Role::User)
            .await
            .unwrap();
        let started = s
            .start_setup_link(&caller(), &self.env, link.token.expose())
            .await
            .unwrap();
        assert_eq!(started.status, Step::PasswordChangeRequired);
        let chosen = s
            .login_new_password(&caller(), &self.env, token(&started), PASSWORD)
            .await
            .unwrap();
        if chosen.status == Step::Authenticated {
            return Person {
                email: email.to_owned(),
                secret: TotpSecret::from_bytes(Vec::new()),
                params: TotpParams::default(),
                session: session(&chosen),
            };
        }
        assert_eq!(chosen.status, Step::MfaSetupRequired);
        let offer = s
            .login_mfa_setup(&caller(), &self.env, token(&chosen))
            .await
            .unwrap();
        let bytes = data_encoding::BASE32_NOPAD
            .decode(offer.secret.expose().as_bytes())
            .unwrap();
        let person = Person {
            email: email.to_owned(),
            secret: TotpSecret::from_bytes(bytes),
            params: offer.params,
            session: String::new(),
        };
        let done = s
            .login_mfa_confirm(
                &caller(),
                &self.env,
                token(&chosen),
                &self.code(&person),
                "phone",
            )
            .await
            .unwrap();
        assert_eq!(done.status, Step::Authenticated);
        assert_eq!(done.recovery_codes.as_ref().map(Vec::len), Some(10));
        Person {
            session: session(&done),
            ..person
        }
    }

    /// The password step; its answer.
    pub(crate) async fn password(&self, p: &Person) -> Result<LoginAnswer, ServiceError> {
        self.service
            .login_password(&caller(), &self.env, &p.email, PASSWORD)
            .await
    }

    /// The code step of the login `answer` opened.
    pub(crate) async fn mfa(
        &self,
        answer: &LoginAnswer,
        code: &SecretString,
    ) -> Result<LoginAnswer, ServiceError> {
        self.service
            .login_mfa(
                &caller(),
                &self.env,
                token(answer),
                &FactorInput::Code(code.clone()),
            )
            .await
    }

    /// Whether the session `token` is valid now.
    pub(crate) async fn valid(&self, token: &str) -> bool {
        match self.service.authenticate(token).await {
            Ok(_) => true,
            Err(ServiceError::Unauthenticated) => false,
            Err(e) => panic!("a session check failed: {e:?}"),
        }
    }
}

pub(crate) fn token(answer: &LoginAnswer) -> &str {
    answer.login_token.as_ref().expect("a login token").expose()
}

pub(crate) fn session(answer: &LoginAnswer) -> String {
    answer
        .session
        .as_ref()
        .expect("a session")
        .token
        .expose()
        .to_owned()
}

/// A code that is not the one of `now`'s step nor of its neighbours.
pub(crate) fn wrong(right: &SecretString) -> SecretString {
    let n: u32 = right.expose().parse().unwrap();
    secret(&format!("{:06}", (n + 500_000) % 1_000_000))
}
