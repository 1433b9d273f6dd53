//! The commands `sluice demo` prints: curl against both gateways and the registry's public
//! pages, and `sluice admin` over the demo admin certificate to suspend and resume a licence.

use super::Demo;

/// How to run this binary: its path when it is `sluice`, else the name.
fn sluice_bin() -> String {
    std::env::current_exe()
        .ok()
        .filter(|p| p.file_stem().is_some_and(|s| s == "sluice"))
        .map_or_else(|| "sluice".to_owned(), |p| p.display().to_string())
}

fn s<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(|x| x.as_str()).unwrap_or_default()
}

/// Prints the walkthrough.
pub fn print(demo: &Demo) {
    let m = &demo.manifest;
    let fire = s(m, "/gateways/0/url");
    let public = s(m, "/gateways/0/public_url");
    let fire_admin = s(m, "/gateways/0/admin_url");
    let util = s(m, "/gateways/1/url");
    let ca = s(m, "/ca");
    let registry = s(m, "/registry/admin_url");
    let c = |id: &str| {
        let d = demo.dir.join("certs");
        format!(
            "--cacert {ca} --cert {}/{id}.pem --key {}/{id}.key",
            d.display(),
            d.display()
        )
    };
    let bin = sluice_bin();
    let admin = format!(
        "{bin} admin --registry {registry} --cert {} --key {} --ca {ca}",
        s(m, "/registry/admin/cert"),
        s(m, "/registry/admin/key"),
    );
    let (acme, maps, bank, stats, nobody) = (
        c(super::ACME),
        c(super::MAPS),
        c(super::GREEN_BANK),
        c(super::STATS),
        c(super::UNLICENSED),
    );
    let hydrants = "datasets/fire-hydrants/records";
    let utilities = "datasets/enterprise-utilities/records";
    println!(
        "sluice demo is running; manifest: {}",
        demo.dir.join("demo.json").display()
    );
    println!();
    println!("## Agency A, Shanghai Fire and Rescue: {fire}");
    println!("# the catalog");
    println!("curl -s {acme} {fire}/v1/catalog");
    println!("# licensed: masked hydrant records (adoption scenario)");
    println!("curl -s {acme} -H 'Sluice-Scenario: fire-hydrant-adoption' '{fire}/v1/{hydrants}?limit=3'");
    println!("# row-filtered licence (Huangpu only), CSV");
    println!("curl -s {maps} -H 'Sluice-Scenario: map-overlay' '{fire}/v1/{hydrants}?limit=5&format=csv'");
    println!("# fingerprints: crews see coordinates unrounded, each licensee's copy with its own marks (±0.000005°)…");
    println!(
        "curl -s {maps} -H 'Sluice-Scenario: crew-routing' '{fire}/v1/{hydrants}?limit=40' > leaked.json"
    );
    println!(
        "# …so if that file turns up somewhere, the gateway names whom it served it to (exit 3: cannot tell)"
    );
    println!("{bin} trace --config {} leaked.json", s(m, "/gateways/0/config"));
    println!("# wrong scenario → problem+json");
    println!("curl -s {acme} -H 'Sluice-Scenario: marketing' '{fire}/v1/{hydrants}'");
    println!("# unlicensed certificate → problem+json");
    println!("curl -s {nobody} -H 'Sluice-Scenario: fire-hydrant-adoption' '{fire}/v1/{hydrants}'");
    println!("# public listener: unconditional data, no client certificate");
    println!("curl -s --cacert {ca} '{public}/v1/datasets/hydrant-locations/records?limit=3'");
    println!("# metrics, and the audit chain");
    println!("curl -s {fire_admin}/metrics | grep sluice_requests");
    println!("{bin} audit verify {}", s(m, "/gateways/0/audit_dir"));
    println!();
    println!("## Agency B, Shanghai Municipal Utilities Bureau: {util}");
    println!("# the same insurer, another licence: credit code partial, name pseudonymised, kWh as a range, phone dropped");
    println!("curl -s {acme} -H 'Sluice-Scenario: property-underwriting' '{util}/v1/{utilities}?limit=3'");
    println!("# a bank's row-filtered licence (Pudong only): identities clear, phone masked; the tariff is a trade secret and never leaves");
    println!("curl -s {bank} -H 'Sluice-Scenario: green-credit-scoring' '{util}/v1/{utilities}?limit=3&month=eq.2025-07'");
    println!("# the data sandbox: the statistics office gets grouped sums only, cells of fewer than 11 suppressed, never a record");
    println!("curl -s {stats} -H 'Sluice-Scenario: district-statistics' '{util}/v1/datasets/enterprise-utilities/aggregate?group_by=district&metric=sum(water_m3)&month=eq.2025-07'");
    println!();
    println!("## The registry: {registry}");
    println!("# public pages: the catalog of both agencies and the violation register");
    println!("curl -s --cacert {ca} {registry}/catalog");
    println!("curl -s --cacert {ca} {registry}/violations");
    println!("# administration with the demo admin certificate: licences, then suspend one…");
    println!("{admin} list");
    println!("{admin} suspend lic-acme-underwriting --reason 'demo: audit of underwriting use'");
    println!("# …and the utilities gateway refuses it within a second (licence-suspended)");
    println!("curl -s {acme} -H 'Sluice-Scenario: property-underwriting' '{util}/v1/{utilities}?limit=3'");
    println!("# resume it; every change is recorded (who, when, what, why)");
    println!("{admin} resume lic-acme-underwriting --reason 'demo: audit closed'");
    println!("{admin} changes");
    println!("# the administrators' console in a browser that holds the demo admin certificate (README, \"The console\")");
    println!("{registry}/console/");
    println!();
    println!("Ctrl-C stops the demo.");
}
