//! PostgreSQL schemas for tests: each test gets its own schema, dropped afterwards, so the
//! same suite runs against SQLite and PostgreSQL side by side.

use sqlx::any::AnyPoolOptions;

/// The test server: `SLUICE_TEST_POSTGRES`, else `postgres://postgres@127.0.0.1:5432/test`.
pub fn base_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Creates a fresh schema named `sluice_<tag>_<uuid>`; returns (its name, a URL whose
/// connections use it).
pub async fn create_schema(tag: &str) -> Result<(String, String), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let base = base_url();
    let schema = format!("sluice_{tag}_{}", uuid::Uuid::now_v7().simple());
    let pool = AnyPoolOptions::new().max_connections(1).connect(&base).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok((
        schema.clone(),
        format!("{base}{sep}options=-c%20search_path%3D{schema}"),
    ))
}

/// Drops a schema made by [`create_schema`].
pub async fn drop_schema(schema: &str) -> Result<(), sqlx::Error> {
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&base_url())
        .await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}
