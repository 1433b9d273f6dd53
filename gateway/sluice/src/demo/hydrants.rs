//! A deterministic, realistic fire-hydrant register for Shanghai, in the spirit of the seed's
//! example: about 13,000 hydrants, each with a volunteer adopter whose name, mobile and ID
//! number are personal data, and free-text notes in which personal identifiers appear: a
//! caretaker's phone in about one record of ten, and in known records ([`planted`]) an
//! identifier of every class the detector safety net recognises, so a test can check that
//! each of them is masked.

use serde::Serialize;

/// One hydrant.
#[derive(Debug, Clone, Serialize)]
pub struct Hydrant {
    /// Register id.
    pub id: String,
    /// District.
    pub district: &'static str,
    /// Street.
    pub street: String,
    /// WGS-84 latitude.
    pub latitude: f64,
    /// WGS-84 longitude.
    pub longitude: f64,
    /// `in_service`, `under_repair` or `out_of_service`.
    pub status: &'static str,
    /// Date of the last inspection.
    pub last_inspection: String,
    /// Adopter's name.
    pub adopter_name: String,
    /// Adopter's mobile number.
    pub adopter_mobile: String,
    /// Adopter's resident ID number.
    pub adopter_id_number: String,
    /// Inspector's notes.
    pub notes: String,
}

/// Shanghai's districts with an approximate centre (lat, lon) and a few streets.
pub(super) const DISTRICTS: &[(&str, f64, f64, &[&str])] = &[
    (
        "Huangpu",
        31.2317,
        121.4846,
        &[
            "Nanjing East Road",
            "Huaihai Middle Road",
            "Zhongshan East 1st Road",
            "Fuzhou Road",
        ],
    ),
    (
        "Xuhui",
        31.1884,
        121.4365,
        &[
            "Hengshan Road",
            "Zhaojiabang Road",
            "Caoxi North Road",
            "Tianyaoqiao Road",
        ],
    ),
    (
        "Changning",
        31.2204,
        121.4246,
        &[
            "Yan'an West Road",
            "Tianshan Road",
            "Hongqiao Road",
            "Xianxia Road",
        ],
    ),
    (
        "Jing'an",
        31.2289,
        121.4480,
        &[
            "West Nanjing Road",
            "Changde Road",
            "Gonghexin Road",
            "Datong Road",
        ],
    ),
    (
        "Putuo",
        31.2495,
        121.3956,
        &["Changshou Road", "Zhenbei Road", "Caoyang Road", "Daduhe Road"],
    ),
    (
        "Hongkou",
        31.2646,
        121.5052,
        &["North Sichuan Road", "Quyang Road", "Siping Road", "Dalian Road"],
    ),
    (
        "Yangpu",
        31.2595,
        121.5260,
        &["Wujiaochang", "Guoding Road", "Kongjiang Road", "Yangshupu Road"],
    ),
    (
        "Minhang",
        31.1129,
        121.3817,
        &["Humin Road", "Qixin Road", "Gudai Road", "Jinhui Road"],
    ),
    (
        "Baoshan",
        31.4045,
        121.4893,
        &["Youyi Road", "Mudanjiang Road", "Gongkang Road", "Hutai Road"],
    ),
    (
        "Jiading",
        31.3747,
        121.2655,
        &["Bole Road", "Tacheng Road", "Anting Road", "Jiaxing Road"],
    ),
    (
        "Pudong",
        31.2215,
        121.5440,
        &[
            "Century Avenue",
            "Zhangyang Road",
            "Lujiazui Ring Road",
            "Zhangjiang Road",
        ],
    ),
    (
        "Jinshan",
        30.7418,
        121.3416,
        &["Weiqing Road", "Longhang Road", "Shihua Avenue", "Zhujing Road"],
    ),
    (
        "Songjiang",
        31.0322,
        121.2277,
        &[
            "Zhongshan Middle Road",
            "Rongle Road",
            "Xinsong Road",
            "Sixian Road",
        ],
    ),
    (
        "Qingpu",
        31.1508,
        121.1244,
        &[
            "Gongyuan Road",
            "Waiqingsong Road",
            "Zhuguang Road",
            "Huaqing Road",
        ],
    ),
    (
        "Fengxian",
        30.9180,
        121.4740,
        &["Nanqiao Road", "Jiefang Road", "Yangwang Road", "Huancheng Road"],
    ),
    (
        "Chongming",
        31.6232,
        121.3970,
        &["Bayi Road", "Dongmen Road", "Chenjia Road", "Beimen Road"],
    ),
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何",
    "林", "罗", "高",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀英", "志强", "建华", "晓东", "丽华", "三丰",
];
const STATUSES: &[&str] = &[
    "in_service",
    "in_service",
    "in_service",
    "in_service",
    "under_repair",
    "out_of_service",
];
const NOTES: &[&str] = &[
    "Pressure normal.",
    "Cap replaced; paint faded.",
    "Blocked by parked cars on weekdays.",
    "Valve stiff, reported to maintenance.",
    "Reflective marker missing.",
    "",
];
/// Shanghai resident ID region codes (first six digits).
const REGIONS: &[&str] = &[
    "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112", "310113", "310114",
    "310115",
];

/// Number of hydrants in the register.
pub const COUNT: usize = 13_000;

/// A small deterministic generator (SplitMix64): the register is the same on every machine.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The check character of an 18-character resident ID number (GB 11643).
pub fn id_check_char(first17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b.wrapping_sub(b'0')) * w)
        .sum();
    C[(sum % 11) as usize] as char
}

pub(super) fn mobile(r: &mut Rng) -> String {
    const PREFIX: &[&str] = &[
        "138", "139", "135", "136", "137", "150", "151", "158", "186", "187", "189", "177",
    ];
    format!("{}{:08}", r.pick(PREFIX), r.next() % 100_000_000)
}

/// Generates the register.
pub fn generate() -> Vec<Hydrant> {
    let mut r = Rng(0x5107_CE00_2019_0901);
    (1..=COUNT)
        .map(|n| {
            let &(district, lat, lon, streets) = r.pick(DISTRICTS);
            let street = format!("{} No. {}", r.pick(streets), 1 + r.below(1500));
            let latitude = round6(lat + (r.unit() - 0.5) * 0.06);
            let longitude = round6(lon + (r.unit() - 0.5) * 0.07);
            let adopter_mobile = mobile(&mut r);
            let birth = format!(
                "{}{:02}{:02}",
                1950 + r.below(55),
                1 + r.below(12),
                1 + r.below(28)
            );
            let first17 = format!("{}{}{:03}", r.pick(REGIONS), birth, r.below(1000));
            let adopter_id_number = format!("{first17}{}", id_check_char(&first17));
            let mut notes = r.pick(NOTES).to_string();
            if r.below(10) == 0 {
                notes.push_str(&format!(" Caretaker reachable at {}.", mobile(&mut r)));
            }
            // Planting draws nothing from `r`: the rest of the register does not depend on it.
            if let Some((_, sentence)) = plant(n, &adopter_mobile, &adopter_id_number) {
                if !notes.is_empty() {
                    notes.push(' ');
                }
                notes.push_str(&sentence);
            }
            Hydrant {
                id: format!("SH-HYD-{n:06}"),
                district,
                street,
                latitude,
                longitude,
                status: STATUSES[r.below(STATUSES.len())],
                last_inspection: format!(
                    "{}-{:02}-{:02}",
                    2024 + r.below(3),
                    1 + r.below(12),
                    1 + r.below(28)
                ),
                adopter_name: format!("{}{}", r.pick(SURNAMES), r.pick(GIVEN)),
                adopter_mobile,
                adopter_id_number,
                notes,
            }
        })
        .collect()
}

/// The classes of identifier the detector safety net recognises in free text (README, "The
/// detector safety net").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identifier {
    /// A mainland mobile number.
    Mobile,
    /// A resident ID number (GB 11643).
    ResidentId,
    /// A bank card number (valid Luhn).
    BankCard,
    /// An e-mail address.
    Email,
}

impl Identifier {
    /// Every class.
    pub const ALL: [Identifier; 4] = [
        Identifier::Mobile,
        Identifier::ResidentId,
        Identifier::BankCard,
        Identifier::Email,
    ];
}

/// An identifier planted in the notes of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plant {
    /// The record's register id.
    pub id: String,
    /// Its class.
    pub class: Identifier,
    /// The identifier exactly as the notes write it (separators included).
    pub value: String,
}

/// The identifiers [`generate`] plants in the notes, in register order: in every record whose
/// number modulo 20 is 0, 3, 5, 8, 10, 11, 14, 16, 17 or 19, one identifier, with every
/// class in several shapes (compact and with separators; next to punctuation, inside Chinese
/// text). The mobile and ID numbers planted are the adopter's own, as a careless inspector
/// would copy them; the bank card numbers and e-mail addresses are made up.
///
/// `records` may be any part of the register: a record's number comes from its id.
pub fn planted(records: &[Hydrant]) -> Vec<Plant> {
    records
        .iter()
        .filter_map(|h| {
            let n = h.id.strip_prefix("SH-HYD-")?.parse().ok()?;
            let (class, value) = plant(n, &h.adopter_mobile, &h.adopter_id_number)?.0;
            Some(Plant {
                id: h.id.clone(),
                class,
                value,
            })
        })
        .collect()
}

/// What record `n` has planted in its notes, if anything: the identifier (class and value as
/// written) and the sentence that carries it.
fn plant(n: usize, mobile: &str, id_number: &str) -> Option<((Identifier, String), String)> {
    use Identifier::{BankCard, Email, Mobile, ResidentId};
    let (class, value, sentence) = match n % 20 {
        3 => (
            Mobile,
            mobile.to_owned(),
            format!("Adopter asks to be called on {mobile}, not the office."),
        ),
        5 => (Mobile, mobile.to_owned(), format!("请联系领养人{mobile}处理")),
        8 => {
            let v = format!("+86 {} {} {}", &mobile[..3], &mobile[3..7], &mobile[7..]);
            let s = format!("Adopter's phone ({v}).");
            (Mobile, v, s)
        }
        11 => (
            ResidentId,
            id_number.to_owned(),
            format!("Adopter ID on file ({id_number})."),
        ),
        14 => (
            ResidentId,
            id_number.to_owned(),
            format!("领养人身份证{id_number}已核验"),
        ),
        16 => {
            let v = format!("{} {} {}", &id_number[..6], &id_number[6..14], &id_number[14..]);
            let s = format!("ID: {v};");
            (ResidentId, v, s)
        }
        17 => {
            let c = card(n, 16);
            let v = format!("{} {} {} {}", &c[..4], &c[4..8], &c[8..12], &c[12..]);
            let s = format!("Deposit refunded to card {v}; receipt filed.");
            (BankCard, v, s)
        }
        19 => {
            let v = card(n, 19);
            let s = format!("押金退至卡号{v}。");
            (BankCard, v, s)
        }
        0 => {
            let v = email(n);
            let s = format!("Adopter prefers e-mail: {v}.");
            (Email, v, s)
        }
        10 => {
            let v = email(n);
            let s = format!("邮箱：{v}，周末回复");
            (Email, v, s)
        }
        _ => return None,
    };
    Some(((class, value), sentence))
}

/// A made-up UnionPay-style card number of `len` digits for record `n`, with a valid Luhn
/// check digit.
fn card(n: usize, len: usize) -> String {
    let mut r = Rng(0xCA4D_0000 ^ n as u64);
    let mut digits = String::from("622202");
    while digits.len() < len - 1 {
        digits.push(char::from(b'0' + r.below(10) as u8));
    }
    (0..10u8)
        .map(|d| format!("{digits}{}", char::from(b'0' + d)))
        .find(|c| luhn(c))
        .unwrap_or_default()
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2, d * 2) {
                (1, dd) if dd > 9 => dd - 9,
                (1, dd) => dd,
                _ => d,
            }
        })
        .sum();
    // (`is_multiple_of` needs Rust 1.87; the workspace supports 1.85.)
    matches!(sum % 10, 0)
}

/// A made-up volunteer e-mail address for record `n`.
fn email(n: usize) -> String {
    const LOCAL: &[&str] = &["zhang.wei", "li.na", "wang.fang", "chen.jie", "liu.yang"];
    format!(
        "{}{}@volunteers.example.org",
        LOCAL[n / 10 % LOCAL.len()],
        n % 1000
    )
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_realistic() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), COUNT);
        assert_eq!(a[1234].adopter_id_number, b[1234].adopter_id_number);
        for h in &a[..200] {
            assert_eq!(h.adopter_id_number.len(), 18);
            let (first, check) = h.adopter_id_number.split_at(17);
            assert_eq!(check.chars().next(), Some(id_check_char(first)));
            assert!(h.adopter_mobile.starts_with('1') && h.adopter_mobile.len() == 11);
            assert!((30.6..31.9).contains(&h.latitude) && (121.0..122.0).contains(&h.longitude));
        }
        assert!(a.iter().any(|h| h.notes.contains("reachable at 1")));
        // Every class is planted, in the notes of the record it names, in the first page.
        let plants = planted(&a);
        for class in Identifier::ALL {
            assert!(
                plants[..10].iter().filter(|p| p.class == class).count() >= 2,
                "{class:?}"
            );
        }
        for p in &plants {
            let n: usize = p.id["SH-HYD-".len()..].parse().unwrap();
            assert!(a[n - 1].notes.contains(&p.value), "{p:?}");
        }
        assert!(plants
            .iter()
            .all(|p| p.class != Identifier::BankCard || luhn(&p.value.replace(' ', ""))));
        // The known-valid Luhn sample.
        assert!(luhn("4111111111111111") && !luhn("4111111111111112"));
        // The known-valid GB 11643 sample.
        assert_eq!(id_check_char("11010519491231002"), 'X');
    }
}
