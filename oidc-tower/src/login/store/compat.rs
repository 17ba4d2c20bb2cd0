//! The store trait of tower-sessions-core 0.14 seen as the one of tower-sessions 0.15.
//!
//! tower-sessions-redis-store 0.16 and tower-sessions-sqlx-store 0.15 implement the
//! `SessionStore` of tower-sessions-core 0.14, while this crate uses tower-sessions 0.15. The two
//! versions have the same record (`id: Id(i128)`, `data: HashMap<String, serde_json::Value>`,
//! `expiry_date: time::OffsetDateTime`) and the same errors, only as distinct types: [`Compat`]
//! converts them field by field, so both versions serialize a record to the same bytes.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};
use tower_sessions_core_014 as v014;

/// A tower-sessions-core 0.14 store, usable as a tower-sessions 0.15 one.
#[derive(Clone)]
pub(crate) struct Compat<S>(pub(crate) S);

impl<S> std::fmt::Debug for Compat<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the inner store: its connection pool may print its configuration (passwords).
        f.write_str("Compat(tower-sessions-core 0.14 store)")
    }
}

pub(crate) fn id_to_014(id: &Id) -> v014::session::Id {
    v014::session::Id(id.0)
}

pub(crate) fn record_to_014(record: &Record) -> v014::session::Record {
    v014::session::Record {
        id: id_to_014(&record.id),
        data: record.data.clone(),
        expiry_date: record.expiry_date,
    }
}

pub(crate) fn record_from_014(record: v014::session::Record) -> Record {
    Record {
        id: Id(record.id.0),
        data: record.data,
        expiry_date: record.expiry_date,
    }
}

pub(crate) fn error_from_014(error: v014::session_store::Error) -> Error {
    match error {
        v014::session_store::Error::Encode(e) => Error::Encode(e),
        v014::session_store::Error::Decode(e) => Error::Decode(e),
        v014::session_store::Error::Backend(e) => Error::Backend(e),
    }
}

#[async_trait]
impl<S> tower_sessions::SessionStore for Compat<S>
where
    S: v014::SessionStore,
{
    async fn create(&self, record: &mut Record) -> Result<()> {
        // The data is moved over and back rather than cloned.
        let mut old = v014::session::Record {
            id: id_to_014(&record.id),
            data: std::mem::take(&mut record.data),
            expiry_date: record.expiry_date,
        };
        let result = self.0.create(&mut old).await;
        // The store may have picked another id (collision); the data comes back either way.
        *record = record_from_014(old);
        result.map_err(error_from_014)
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.0
            .save(&record_to_014(record))
            .await
            .map_err(error_from_014)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.0
            .load(&id_to_014(id))
            .await
            .map(|found| found.map(record_from_014))
            .map_err(error_from_014)
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.0.delete(&id_to_014(id)).await.map_err(error_from_014)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;
    use std::sync::Mutex;

    use tower_sessions::SessionStore as _;

    use super::*;

    /// A 0.14 store in memory that renames the first id it is asked to create.
    #[derive(Debug, Default)]
    struct Old {
        records: Mutex<HashMap<i128, v014::session::Record>>,
    }

    #[async_trait]
    impl v014::SessionStore for Old {
        async fn create(
            &self,
            record: &mut v014::session::Record,
        ) -> v014::session_store::Result<()> {
            let mut records = self.records.lock().unwrap();
            while records.contains_key(&record.id.0) {
                record.id = v014::session::Id(record.id.0.wrapping_add(1));
            }
            records.insert(record.id.0, record.clone());
            Ok(())
        }
        async fn save(&self, record: &v014::session::Record) -> v014::session_store::Result<()> {
            if record.data.contains_key("fail") {
                return Err(v014::session_store::Error::Backend("down".to_owned()));
            }
            self.records
                .lock()
                .unwrap()
                .insert(record.id.0, record.clone());
            Ok(())
        }
        async fn load(
            &self,
            id: &v014::session::Id,
        ) -> v014::session_store::Result<Option<v014::session::Record>> {
            Ok(self.records.lock().unwrap().get(&id.0).cloned())
        }
        async fn delete(&self, id: &v014::session::Id) -> v014::session_store::Result<()> {
            self.records.lock().unwrap().remove(&id.0);
            Ok(())
        }
    }

    fn record(id: i128) -> Record {
        Record {
            id: Id(id),
            data: HashMap::from([("k".to_owned(), serde_json::json!({"v": [1, 2]}))]),
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::UNIX_EPOCH
                + tower_sessions::cookie::time::Duration::days(20_000),
        }
    }

    #[tokio::test]
    async fn records_round_trip_and_renamed_ids_come_back() {
        let store = Compat(Old::default());
        let mut first = record(7);
        store.create(&mut first).await.unwrap();
        assert_eq!(first, record(7));
        let mut second = record(7);
        store.create(&mut second).await.unwrap();
        assert_eq!(second.id, Id(8), "the new id is reported");
        assert_eq!(second.data, record(7).data, "the data comes back");
        assert_eq!(store.load(&Id(8)).await.unwrap(), Some(second.clone()));

        let mut changed = second.clone();
        changed.data.insert("x".to_owned(), serde_json::json!("y"));
        store.save(&changed).await.unwrap();
        assert_eq!(store.load(&Id(8)).await.unwrap(), Some(changed));
        store.delete(&Id(8)).await.unwrap();
        assert_eq!(store.load(&Id(8)).await.unwrap(), None);
        assert_eq!(store.load(&Id(7)).await.unwrap(), Some(first));
    }

    #[tokio::test]
    async fn errors_keep_their_kind() {
        let store = Compat(Old::default());
        let mut failing = record(1);
        failing
            .data
            .insert("fail".to_owned(), serde_json::json!(true));
        let err = store.save(&failing).await.unwrap_err();
        assert!(
            matches!(err, Error::Backend(ref m) if m == "down"),
            "{err:?}"
        );
        for (old, new) in [
            (v014::session_store::Error::Encode("e".to_owned()), "Encode"),
            (v014::session_store::Error::Decode("d".to_owned()), "Decode"),
        ] {
            assert!(format!("{:?}", error_from_014(old)).starts_with(new));
        }
    }

    #[test]
    fn both_versions_serialize_alike() {
        let new = record(-42);
        let old = record_to_014(&new);
        assert_eq!(
            serde_json::to_string(&new).unwrap(),
            serde_json::to_string(&old).unwrap()
        );
    }
}
