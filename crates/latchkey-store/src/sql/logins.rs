//! Login transactions (SPEC §3): the units moved here so far.

use latchkey_service::store::StoreResult;

use super::{Db, Sql};

pub(crate) static EXPIRE_ALL: Sql = Sql::new(concat!(
    "UPDATE login_transactions AS s SET expires_at = ?2 WHERE ",
    of_user!(),
    " AND s.expires_at > ?2"
));

/// Expire every pending login transaction of a user now (a lockout): the rows stay so a
/// step on one of them can still be told apart from an unknown token.
pub(crate) async fn expire_all<D: Db>(db: &mut D, user_id: &str, now: i64) -> StoreResult<()> {
    db.exec(&EXPIRE_ALL, &[user_id.into(), now.into()]).await?;
    Ok(())
}

pub(crate) static END_ALL: Sql = Sql::new(concat!(
    "DELETE FROM login_transactions AS s WHERE ",
    of_user!()
));

/// End every pending login transaction of a user.
pub(crate) async fn end_all<D: Db>(db: &mut D, user_id: &str) -> StoreResult<u64> {
    db.exec(&END_ALL, &[user_id.into()]).await
}
