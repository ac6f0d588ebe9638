//! The audit-log page of an environment (SPEC §6): filters by user, type and dates, newest
//! first, a hundred a page.

use axum::{extract::State, http::StatusCode, response::Response};
use latchkey_service::{AuditType, Store, store::AuditQuery};

use super::{
    PageAdmin, PageQuery,
    admin::chrome,
    admin_templates::{AuditFilters, AuditPage, AuditRow},
    csrf::Csrf,
};
use crate::{redirect::encode, state::AppState};

/// A date (`2026-11-28`, the start of that day UTC) or an RFC 3339 time.
fn day_or_time(v: &str, end_of_day: bool) -> Result<Option<i64>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(v, &fmt) {
        let t = d.midnight().assume_utc().unix_timestamp();
        return Ok(Some(if end_of_day { t + 86_399 } else { t }));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| format!("“{v}” is not a date like 2026-11-28."))
}

/// `GET /e/{env}/admin/audit`.
pub async fn audit<S: Store>(
    State(st): State<AppState<S>>,
    who: PageAdmin,
    csrf: Csrf,
    PageQuery(filters): PageQuery<AuditFilters>,
) -> Response {
    let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let mut error = None;
    let (since, until) = match (
        day_or_time(&filters.since, false),
        day_or_time(&filters.until, true),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(m), _) | (_, Err(m)) => {
            error = Some(m);
            (None, None)
        }
    };
    let query = AuditQuery {
        user: some(&filters.user),
        kind: some(&filters.kind),
        since,
        until,
        before: some(&filters.cursor),
        limit: 0,
    };
    let (events, next) = if error.is_some() {
        (Vec::new(), None)
    } else {
        match st.service.audit_log(&who.admin, query, Some(100)).await {
            Ok(p) => (p.events.iter().map(AuditRow::from).collect(), p.next_cursor),
            Err(e) => {
                error = Some(super::frame::refusal(e, st.service.now()).1);
                (Vec::new(), None)
            }
        }
    };
    let next = next.map(|c| {
        format!(
            "?user={}&type={}&since={}&until={}&cursor={}",
            encode(&filters.user),
            encode(&filters.kind),
            encode(&filters.since),
            encode(&filters.until),
            encode(&c)
        )
    });
    let t = AuditPage {
        chrome: chrome(&who, &csrf),
        filters,
        types: AuditType::ALL.iter().map(|t| t.as_str()).collect(),
        events,
        next,
        error,
    };
    let status = if t.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    csrf.page(&st, status, &t)
}
