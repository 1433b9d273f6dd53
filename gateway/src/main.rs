//! The `sluice` binary.

fn main() -> anyhow::Result<()> {
    Ok(())
}
