//! A deterministic register of the municipal utilities bureau: monthly water and electricity
//! use of 240 Shanghai enterprises over 2025 (2,880 records). Organisation-graded data: the
//! enterprise's identity is public by law, its consumption is internal operations, its
//! negotiated tariff a trade secret; the contact phone is personal data.

use super::hydrants::{mobile, Rng, DISTRICTS};
use serde::Serialize;
use sluice_registry::credit_code::{check_char, ALPHABET};

/// One enterprise's use in one month.
#[derive(Debug, Clone, Serialize)]
pub struct UtilityUse {
    /// Unified social credit code (GB 32100, valid check character).
    pub credit_code: String,
    /// Registered name.
    pub enterprise_name: String,
    /// District.
    pub district: &'static str,
    /// Registered address.
    pub address: String,
    /// Industry (GB/T 4754-2017 class).
    pub industry_code: &'static str,
    /// Billing month, `YYYY-MM`.
    pub month: String,
    /// Water used, cubic metres.
    pub water_m3: f64,
    /// Electricity used, kWh.
    pub electricity_kwh: u64,
    /// The enterprise's contact mobile.
    pub contact_phone: String,
    /// Negotiated electricity tariff, CNY per kWh.
    pub tariff_cny_per_kwh: f64,
}

/// Number of enterprises.
pub const ENTERPRISES: usize = 240;
/// Number of records: one per enterprise and month of 2025.
pub const COUNT: usize = ENTERPRISES * 12;

/// District → administrative region code (the credit code's characters 3–8).
const REGION_CODES: &[(&str, &str)] = &[
    ("Huangpu", "310101"),
    ("Xuhui", "310104"),
    ("Changning", "310105"),
    ("Jing'an", "310106"),
    ("Putuo", "310107"),
    ("Hongkou", "310109"),
    ("Yangpu", "310110"),
    ("Minhang", "310112"),
    ("Baoshan", "310113"),
    ("Jiading", "310114"),
    ("Pudong", "310115"),
    ("Jinshan", "310116"),
    ("Songjiang", "310117"),
    ("Qingpu", "310118"),
    ("Fengxian", "310120"),
    ("Chongming", "310151"),
];

/// Industry class, the word in the enterprise name, typical monthly kWh and m³.
const INDUSTRIES: &[(&str, &str, f64, f64)] = &[
    ("C3311", "金属结构", 180_000.0, 2_400.0),
    ("C2651", "新材料", 420_000.0, 9_500.0),
    ("C3985", "电子元件", 260_000.0, 3_800.0),
    ("C2710", "医药", 310_000.0, 12_000.0),
    ("C3670", "汽车部件", 380_000.0, 5_200.0),
    ("C1431", "食品", 95_000.0, 7_600.0),
    ("I6510", "软件科技", 22_000.0, 310.0),
    ("H6110", "酒店管理", 85_000.0, 4_100.0),
    ("F5212", "超市", 48_000.0, 650.0),
    ("G5920", "物流仓储", 36_000.0, 280.0),
];

/// Seasonal factor of electricity use by month: a summer (air conditioning) and a smaller
/// winter peak.
const SEASON: [f64; 12] = [
    1.08, 1.02, 0.95, 0.92, 0.96, 1.08, 1.30, 1.32, 1.10, 0.94, 0.95, 1.05,
];

const BRANDS: &[&str] = &[
    "申联", "沪新", "江海", "联创", "恒信", "瑞丰", "华盛", "金川", "明辉", "永安", "浦源", "东旭", "宏泰",
    "嘉禾", "启明", "天衡",
];

/// A valid unified social credit code for an enterprise registered in `region`: `91` (an
/// enterprise registered with the market regulator), the region code, a 9-character
/// organisation code starting `MA` that embeds `n` (so codes are unique), the check character.
fn credit_code(region: &str, n: usize, r: &mut Rng) -> String {
    let ch = |i: usize| char::from(ALPHABET[i % ALPHABET.len()]);
    let base = ALPHABET.len();
    let org: String = ['M', 'A', '1']
        .into_iter()
        .chain((0..4).map(|_| ch(r.below(base))))
        .chain([ch(n / base), ch(n % base)])
        .collect();
    let first17 = format!("91{region}{org}");
    // Every character above is from the alphabet and there are 17 of them.
    let check = check_char(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

/// Generates the register, enterprise by enterprise, month by month.
pub fn generate() -> Vec<UtilityUse> {
    let mut r = Rng(0x0711_1755_2025_0101);
    let mut out = Vec::with_capacity(COUNT);
    for n in 0..ENTERPRISES {
        let &(district, _, _, streets) = r.pick(DISTRICTS);
        let region = REGION_CODES
            .iter()
            .find(|(d, _)| *d == district)
            .map_or("310000", |(_, c)| c);
        let &(industry_code, word, kwh, m3) = r.pick(INDUSTRIES);
        let code = credit_code(region, n, &mut r);
        let enterprise_name = format!("上海{}{}有限公司", r.pick(BRANDS), word);
        let address = format!("{} No. {}, {district}", r.pick(streets), 1 + r.below(1500));
        let size = 0.3 + 1.7 * r.unit();
        let phone = mobile(&mut r);
        let tariff = ((0.55 + 0.35 * r.unit()) * 1000.0).round() / 1000.0;
        for (month, season) in (1..=12u32).zip(SEASON) {
            let noise = 0.9 + 0.2 * r.unit();
            let electricity_kwh = (kwh * size * season * noise).round() as u64;
            let water_m3 = (m3 * size * (0.95 + 0.1 * r.unit()) * 10.0).round() / 10.0;
            out.push(UtilityUse {
                credit_code: code.clone(),
                enterprise_name: enterprise_name.clone(),
                district,
                address: address.clone(),
                industry_code,
                month: format!("2025-{month:02}"),
                water_m3,
                electricity_kwh,
                contact_phone: phone.clone(),
                tariff_cny_per_kwh: tariff,
            });
        }
    }
    out
}

/// The register's table in the bureau's SQLite database.
pub const TABLE: &str = "enterprise_use";

/// Writes the register into a new SQLite database at `path` (replacing any file there): one
/// row per enterprise and month, keyed by `use_id` (the register's order, `00001`…), a column
/// no licence names, so it orders pages as the HTTP register does and never leaves.
pub fn write_sqlite(path: &std::path::Path, records: &[UtilityUse]) -> rusqlite::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut db = rusqlite::Connection::open(path)?;
    db.execute_batch(&format!(
        "CREATE TABLE {TABLE} (use_id TEXT PRIMARY KEY NOT NULL, credit_code TEXT NOT NULL, \
         enterprise_name TEXT NOT NULL, district TEXT NOT NULL, address TEXT NOT NULL, \
         industry_code TEXT NOT NULL, month TEXT NOT NULL, water_m3 REAL NOT NULL, \
         electricity_kwh INTEGER NOT NULL, contact_phone TEXT NOT NULL, \
         tariff_cny_per_kwh REAL NOT NULL) STRICT"
    ))?;
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare(&format!(
            "INSERT INTO {TABLE} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))?;
        for (i, u) in records.iter().enumerate() {
            insert.execute(rusqlite::params![
                format!("{i:05}"),
                u.credit_code,
                u.enterprise_name,
                u.district,
                u.address,
                u.industry_code,
                u.month,
                u.water_m3,
                i64::try_from(u.electricity_kwh).unwrap_or(i64::MAX),
                u.contact_phone,
                u.tariff_cny_per_kwh,
            ])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_registry::credit_code::validate;

    #[test]
    fn deterministic_with_valid_unique_credit_codes() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), COUNT);
        assert_eq!(a[1234].credit_code, b[1234].credit_code);
        assert_eq!(a[1234].electricity_kwh, b[1234].electricity_kwh);
        let mut codes: Vec<&str> = a.iter().map(|u| u.credit_code.as_str()).collect();
        for c in &codes {
            assert!(validate(c).is_ok(), "{c}");
        }
        codes.dedup();
        assert_eq!(codes.len(), ENTERPRISES);
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ENTERPRISES, "credit codes are unique per enterprise");
        for u in &a {
            assert!(u.electricity_kwh > 0 && u.water_m3 > 0.0);
            assert!(u.contact_phone.starts_with('1') && u.contact_phone.len() == 11);
            assert!(
                (0.5..1.0).contains(&u.tariff_cny_per_kwh),
                "{}",
                u.tariff_cny_per_kwh
            );
            assert!(u.enterprise_name.ends_with("有限公司"));
        }
        let region = |d: &str| {
            a.iter()
                .find(|u| u.district == d)
                .map(|u| u.credit_code[2..8].to_owned())
        };
        assert_eq!(region("Pudong").as_deref(), Some("310115"));
        // Summer use is above spring use for the same enterprise.
        let (april, july) = (&a[3], &a[6]);
        assert!(july.electricity_kwh > april.electricity_kwh);
    }
}
