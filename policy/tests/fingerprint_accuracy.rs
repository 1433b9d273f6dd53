//! How well fingerprints name the licensee behind a leaked copy (issue 13, item 4): 100
//! licensees hold the same dataset; copies of 20 records with two tolerant fields each are
//! leaked unaltered, with 10 % of the values altered, from an unlicensed source, from a
//! licensee outside the candidates, and mixed by two colluders. Deterministic (a seeded
//! generator): the same figures on every run.
//!
//! `FINGERPRINT_TRIALS=n` sets the trials per case (default 1,000);
//! `cargo test --release -p sluice-policy --test fingerprint_accuracy -- --nocapture` prints
//! the table README quotes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_policy::mask::fingerprint::{
    verdict, Evidence, FingerprintKey, Observation, Score, Tolerance, Verdict, DEFAULT_ALPHA,
};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const LICENSEES: usize = 100;
const RECORDS: usize = 2_000;

/// One leaked value: record key, field, text.
type Row = (String, &'static str, String);

struct World {
    keys: Vec<FingerprintKey>,
    /// The records as the source holds them: (key, lat, lon).
    records: Vec<(String, String, String)>,
    tol: Tolerance,
}

impl World {
    fn new(rng: &mut Rng) -> World {
        let keys = (0..LICENSEES)
            .map(|i| {
                FingerprintKey::derive(b"accuracy master secret", &format!("licensee-{i:03}"), "hydrants")
            })
            .collect();
        let records = (0..RECORDS)
            .map(|i| {
                (
                    format!("HY-{}", 100_000 + i),
                    format!("31.{:06}", rng.below(1_000_000)),
                    format!("121.{:06}", rng.below(1_000_000)),
                )
            })
            .collect();
        World {
            keys,
            records,
            tol: Tolerance::parse("0.00001").unwrap(),
        }
    }

    /// `n` distinct records, as served to `licensee` (marked) or by the source (`None`).
    fn copy(&self, rng: &mut Rng, n: usize, licensee: Option<&FingerprintKey>) -> Vec<Row> {
        let mut picked: Vec<usize> = Vec::with_capacity(n);
        while picked.len() < n {
            let r = rng.below(self.records.len());
            if !picked.contains(&r) {
                picked.push(r);
            }
        }
        picked
            .into_iter()
            .flat_map(|r| {
                let (k, lat, lon) = &self.records[r];
                let mark = |field: &'static str, v: &String| match licensee {
                    Some(key) => key.mark(&self.tol, k.as_bytes(), field, v).unwrap(),
                    None => v.clone(),
                };
                [
                    (k.clone(), "lat", mark("lat", lat)),
                    (k.clone(), "lon", mark("lon", lon)),
                ]
            })
            .collect()
    }

    /// Scores every candidate on the leaked rows.
    fn trace(&self, rows: &[Row], candidates: &[FingerprintKey]) -> (Vec<Score>, Verdict) {
        let fields = [("lat", self.tol), ("lon", self.tol)];
        let ev = Evidence::new(
            &fields,
            rows.iter().map(|(k, f, v)| Observation {
                record_key: k.as_bytes(),
                field: f,
                value: v,
            }),
        );
        let scores: Vec<Score> = candidates.iter().map(|k| ev.score(k)).collect();
        let v = verdict(&scores, DEFAULT_ALPHA);
        (scores, v)
    }
}

/// Alters a tenth of the values: rounded to four decimals, or replaced by another number.
fn alter(rng: &mut Rng, rows: &mut [Row]) {
    let n = rows.len() / 10;
    let mut done = Vec::new();
    while done.len() < n {
        let i = rng.below(rows.len());
        if done.contains(&i) {
            continue;
        }
        done.push(i);
        let v = &mut rows[i].2;
        *v = if rng.below(2) == 0 {
            format!("{:.4}", v.parse::<f64>().unwrap())
        } else {
            format!(
                "{}.{:06}",
                if rows[i].1 == "lat" { 31 } else { 121 },
                rng.below(1_000_000)
            )
        };
    }
}

fn trials() -> usize {
    std::env::var("FINGERPRINT_TRIALS").map_or(1_000, |t| t.parse().unwrap())
}

/// The smallest candidate p-value × the number of candidates, per trial, summarised.
fn quantiles(mut ps: Vec<f64>) -> String {
    ps.sort_by(f64::total_cmp);
    let q = |f: f64| ps[((ps.len() - 1) as f64 * f) as usize];
    format!("min {:.2e}, 1 % {:.2e}, median {:.2e}", q(0.0), q(0.01), q(0.5))
}

#[test]
fn fingerprints_name_the_right_licensee_and_never_an_innocent_one() {
    let mut rng = Rng(0x5eed_f1a9_0bad_c0de);
    let world = World::new(&mut rng);
    let n = trials();
    let mut report = Vec::new();

    // Unaltered and 10 % altered copies of 20 records from a random licensee.
    for altered in [false, true] {
        let mut right = 0;
        let mut wrong = 0;
        for _ in 0..n {
            let who = rng.below(LICENSEES);
            let mut rows = world.copy(&mut rng, 20, Some(&world.keys[who]));
            if altered {
                alter(&mut rng, &mut rows);
            }
            match world.trace(&rows, &world.keys).1 {
                Verdict::Named { candidate, .. } if candidate == who => right += 1,
                Verdict::Named { .. } => wrong += 1,
                Verdict::CannotTell => {}
            }
        }
        let case = if altered { "10 % altered" } else { "unaltered" };
        report.push(format!(
            "20 records, {case}: named right {right}/{n}, named wrong {wrong}"
        ));
        assert_eq!(wrong, 0, "{case}: an innocent licensee was named");
        let need = if altered { 0.90 } else { 0.99 };
        assert!(right as f64 >= need * n as f64, "{case}: {right}/{n}");
    }

    // Copies nobody among the candidates received: the source's own records, and a copy served
    // to a licensee outside the candidate set.
    let outsider = FingerprintKey::derive(b"accuracy master secret", "outsider", "hydrants");
    for (case, key) in [("unlicensed source", None), ("outside licensee", Some(&outsider))] {
        let mut named = 0;
        let mut adjusted = Vec::with_capacity(n);
        for _ in 0..n {
            let rows = world.copy(&mut rng, 20, key);
            let (scores, v) = world.trace(&rows, &world.keys);
            let best = scores.iter().map(|s| s.p_value).fold(1.0, f64::min);
            adjusted.push((best * LICENSEES as f64).min(1.0));
            if matches!(v, Verdict::Named { .. }) {
                named += 1;
            }
        }
        report.push(format!(
            "20 records from the {case}: named {named}/{n}; best candidate's adjusted p-value {}",
            quantiles(adjusted)
        ));
        assert_eq!(named, 0, "{case}: somebody was named");
    }

    // Two colluders interleave their copies record by record.
    for records in [20, 40, 80, 160] {
        let mut one_of_them = 0;
        let mut innocent = 0;
        let runs = n / 4;
        for _ in 0..runs {
            let a = rng.below(LICENSEES);
            let b = (a + 1 + rng.below(LICENSEES - 1)) % LICENSEES;
            let ca = world.copy(&mut rng, records, Some(&world.keys[a]));
            // The same records as b received them, then one of the two per record.
            let mixed: Vec<Row> = ca
                .chunks(2)
                .flat_map(|pair| {
                    let from_b = rng.below(2) == 0;
                    pair.iter()
                        .map(|(k, f, v)| {
                            let rec = world.records.iter().find(|r| &r.0 == k).unwrap();
                            let orig = if *f == "lat" { &rec.1 } else { &rec.2 };
                            let value = if from_b {
                                world.keys[b].mark(&world.tol, k.as_bytes(), f, orig).unwrap()
                            } else {
                                v.clone()
                            };
                            (k.clone(), *f, value)
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            match world.trace(&mixed, &world.keys).1 {
                Verdict::Named { candidate, .. } if candidate == a || candidate == b => one_of_them += 1,
                Verdict::Named { .. } => innocent += 1,
                Verdict::CannotTell => {}
            }
        }
        report.push(format!(
            "two colluders, {records} records interleaved: one of them named {one_of_them}/{runs}, an innocent {innocent}"
        ));
        assert_eq!(
            innocent, 0,
            "collusion over {records} records named an innocent licensee"
        );
    }

    eprintln!("fingerprint accuracy, {LICENSEES} licensees, tolerance 0.00001 on lat and lon:");
    for line in &report {
        eprintln!("  {line}");
    }
}
