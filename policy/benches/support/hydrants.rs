//! Hydrant-like records for the masker bench and the profiling example: a deterministic
//! generator (the same bytes on every run), the JSON and CSV bodies, and the bench's plan.

use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use std::sync::Arc;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const DISTRICTS: &[&str] = &[
    "Huangpu",
    "Xuhui",
    "Changning",
    "Jing'an",
    "Putuo",
    "Hongkou",
    "Yangpu",
    "Pudong",
];
const STREETS: &[&str] = &[
    "Zhongshan East 1st Rd",
    "Nanjing West Rd",
    "Huaihai Middle Rd",
    "Century Ave",
    "Siping Rd",
];
const STATUS: &[&str] = &[
    "in_service",
    "out_of_service",
    "needs_inspection",
    "decommissioned",
];
const SURNAMES: &[&str] = &[
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu",
];
const GIVEN: &[&str] = &[
    "Wei", "Fang", "Na", "Xiuying", "Min", "Jing", "Li", "Qiang", "Lei", "Jun",
];
const NOTES: &[&str] = &[
    "Checked valve, cap replaced",
    "Paint peeling; schedule repaint before summer",
    "Access blocked by parked cars on weekdays",
    "Pressure fine",
    "",
    "Adopter reports a slow leak at the base",
];

/// One hydrant.
pub struct Rec {
    id: u64,
    district: &'static str,
    street: String,
    lat: String,
    lon: String,
    status: &'static str,
    inspected: String,
    name: String,
    mobile: String,
    notes: String,
}

/// Records until their JSON text reaches about `target` bytes.
pub fn records(target: usize) -> Vec<Rec> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut v = Vec::new();
    let mut size = 0;
    let mut id = 100_000;
    while size < target {
        id += 1 + rng.below(3);
        let mobile = format!("13{}{:08}", rng.below(10), rng.below(100_000_000));
        let mut notes = rng.pick(NOTES).to_owned();
        if rng.below(20) == 0 {
            notes.push_str(&format!("; call {mobile} first"));
        }
        let r = Rec {
            id,
            district: rng.pick(DISTRICTS),
            street: format!("{} {}", rng.pick(STREETS), 1 + rng.below(900)),
            lat: format!("31.{:06}", rng.below(1_000_000)),
            lon: format!("121.{:06}", rng.below(1_000_000)),
            status: rng.pick(STATUS),
            inspected: format!(
                "20{:02}-{:02}-{:02}",
                18 + rng.below(7),
                1 + rng.below(12),
                1 + rng.below(28)
            ),
            name: format!("{} {}", rng.pick(SURNAMES), rng.pick(GIVEN)),
            mobile,
            notes,
        };
        size += 230 + r.street.len() + r.notes.len();
        v.push(r);
    }
    v
}

/// The records as one JSON array.
pub fn json_body(recs: &[Rec]) -> Vec<u8> {
    let mut s = String::with_capacity(recs.len() * 300 + 2);
    s.push('[');
    for (n, r) in recs.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"id":"HY-{}","district":{},"street":"{}","lat":{},"lon":{},"status":"{}","last_inspection":"{}","adopter_name":"{}","adopter_mobile":"{}","notes":"{}"}}"#,
            r.id,
            serde_json::to_string(r.district).unwrap(),
            r.street,
            r.lat,
            r.lon,
            r.status,
            r.inspected,
            r.name,
            r.mobile,
            r.notes
        ));
    }
    s.push(']');
    s.into_bytes()
}

/// The records as CSV with a header row.
pub fn csv_body(recs: &[Rec]) -> Vec<u8> {
    let mut s = String::with_capacity(recs.len() * 300 + 100);
    s.push_str("id,district,street,lat,lon,status,last_inspection,adopter_name,adopter_mobile,notes\n");
    for r in recs {
        let notes = if r.notes.contains([',', ';']) {
            format!("\"{}\"", r.notes)
        } else {
            r.notes.clone()
        };
        s.push_str(&format!(
            "HY-{},{},{},{},{},{},{},{},{},{}\n",
            r.id, r.district, r.street, r.lat, r.lon, r.status, r.inspected, r.name, r.mobile, notes
        ));
    }
    s.into_bytes()
}

/// 10 source fields: 3 masked (partial, pseudonym, month), 1 dropped (street), notes scanned.
pub fn plan() -> Arc<FieldPlan> {
    let f = |name: &str, action: FieldAction| PlannedField {
        name: name.to_owned(),
        action,
    };
    let emit = FieldAction::Emit { scan: false };
    Arc::new(FieldPlan {
        record_key: None,
        marks: None,
        fields: vec![
            f("id", emit.clone()),
            f("district", emit.clone()),
            f("lat", emit.clone()),
            f("lon", emit.clone()),
            f("status", emit.clone()),
            f("last_inspection", FieldAction::Mask(MaskRule::Month)),
            f(
                "adopter_name",
                FieldAction::Mask(MaskRule::Partial { first: 1, last: 0 }),
            ),
            f("adopter_mobile", FieldAction::Mask(MaskRule::Pseudonym)),
            f("notes", FieldAction::Emit { scan: true }),
        ],
        row_filter: None,
        key: PseudonymKey::derive(b"bench master secret", "acme", "hydrants"),
    })
}
