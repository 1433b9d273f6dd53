//! The layout of the records of one response, learnt as they stream: most sources write every
//! record with the same members in the same order, compactly. A record of the known layout is
//! parsed by comparing each member name as one literal, and written by a program compiled once
//! per layout (runs of clear members copied in one piece, the other fields one by one) instead
//! of deciding member by member. Anything else (whitespace, escaped names, a changed member)
//! is learnt or left to the general parser; both give the same record and the same bytes.

use super::json;
use super::record::{Record, Slots};
use super::OutputFormat;

/// Most members a layout holds (one bit each in a `u64`).
const MAX_MEMBERS: usize = 64;

/// One step of the output program for a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Members `from..=to` copied as they are, with the commas between them: consecutive
    /// clear fields of the plan that are consecutive members.
    Copy { from: usize, to: usize },
    /// The value of this slot, written field by field (masked, scanned or dropped).
    Slot(usize),
}

/// The program that writes the record just parsed by a layout.
pub(super) struct Program<'a> {
    /// The steps, in output order.
    pub ops: &'a [Op],
    /// Input range (`"name":value`) of each member.
    pub spans: &'a [(usize, usize)],
}

/// The member layout of the last canonical record, and its output program.
#[derive(Debug, Default)]
pub(super) struct Shape {
    /// `"name":` of each member in input order, and the slot of the name.
    members: Vec<(Box<[u8]>, Option<usize>)>,
    /// The output program for the layout; rebuilt after the layout changed.
    ops: Vec<Op>,
    /// Members the program copies (one bit per member).
    copied: u64,
    /// `ops` and `copied` describe `members`.
    compiled: bool,
    /// Input range (`"name":value`) of each member of the record just parsed.
    spans: Vec<(usize, usize)>,
    /// Members of the record just parsed whose value cannot be copied as it is: a string
    /// with escapes (re-encoded canonically) or a composite (compacted).
    not_raw: u64,
}

impl Shape {
    /// Parses the record at `d[i] == b'{'` when it is canonical: `{"name":value,...}` without
    /// whitespace between tokens or escapes in names, at most 64 members. Fills `rec` (reset)
    /// exactly as the general parser would and returns the index after the record; a member
    /// that differs from the last record's is learnt. `None`: not canonical, or the slice ends
    /// inside the record; the general parser must read it (and report what is wrong).
    #[inline]
    pub(super) fn parse(&mut self, d: &[u8], i: usize, slots: &Slots, rec: &mut Record) -> Option<usize> {
        self.spans.clear();
        self.not_raw = 0;
        let mut j = i + 1;
        if *d.get(j)? == b'}' {
            self.truncate(0);
            return Some(j + 1);
        }
        let mut n = 0;
        loop {
            if n == MAX_MEMBERS {
                return None;
            }
            let mstart = j;
            let (slot, vstart) = match self.members.get(n) {
                Some((lit, slot)) if same_at(d, j, lit) => (*slot, j + lit.len()),
                _ => self.learn(d, j, n, slots)?,
            };
            // A value after whitespace is not canonical: the general scanner refuses it here.
            let (next, raw) = super::read_value(d, vstart, Some(mstart), slot, rec).ok()?;
            if !raw {
                self.not_raw |= 1 << n;
            }
            self.spans.push((mstart, next));
            n += 1;
            match *d.get(next)? {
                b',' => j = next + 1,
                b'}' => {
                    self.truncate(n);
                    return Some(next + 1);
                }
                _ => return None,
            }
        }
    }

    /// Reads a member name at `d[j]` that differs from the layout's `n`th and makes it the
    /// `n`th (dropping the members after it); its slot and the index after its colon.
    #[cold]
    fn learn(&mut self, d: &[u8], j: usize, n: usize, slots: &Slots) -> Option<(Option<usize>, usize)> {
        if *d.get(j)? != b'"' {
            return None;
        }
        let (kend, esc) = json::scan_str(d, j + 1).ok()?;
        if esc || *d.get(kend)? != b':' {
            return None;
        }
        let slot = slots.find_in(d, j + 1, kend - 1);
        self.members.truncate(n);
        self.members.push((d[j..=kend].into(), slot));
        self.compiled = false;
        Some((slot, kend + 1))
    }

    /// Ends the layout after `n` members.
    #[inline]
    fn truncate(&mut self, n: usize) {
        if self.members.len() != n {
            self.members.truncate(n);
            self.compiled = false;
        }
    }

    /// Compiles the output program of the layout when it changed.
    pub(super) fn compile(&mut self, slots: &Slots) {
        if self.compiled {
            return;
        }
        self.compiled = true;
        self.ops.clear();
        self.copied = 0;
        for s in 0..slots.n_plan() {
            // The first member of the name holds the value (first wins).
            let Some(m) = self.members.iter().position(|(_, slot)| *slot == Some(s)) else {
                continue;
            };
            if !slots.copies(s) {
                self.ops.push(Op::Slot(s));
                continue;
            }
            self.copied |= 1 << m;
            match self.ops.last_mut() {
                Some(Op::Copy { to, .. }) if *to + 1 == m => *to = m,
                _ => self.ops.push(Op::Copy { from: m, to: m }),
            }
        }
    }

    /// The program and the member ranges that write the record just parsed, when its copied
    /// members can be copied as they are and the output is JSON.
    #[inline]
    pub(super) fn program(&self, fmt: OutputFormat) -> Option<Program<'_>> {
        (self.compiled && fmt != OutputFormat::Csv && self.not_raw & self.copied == 0).then_some(Program {
            ops: &self.ops,
            spans: &self.spans,
        })
    }
}

/// Whether `d[j..]` starts with `lit`, comparing a word at a time (member names are short:
/// a call to `memcmp` costs more than the comparison).
#[inline]
fn same_at(d: &[u8], j: usize, lit: &[u8]) -> bool {
    let n = lit.len();
    let Some(s) = d.get(j..j + n) else {
        return false;
    };
    let w8 = |x: &[u8], k: usize| x.get(k..k + 8).and_then(|a| <[u8; 8]>::try_from(a).ok());
    let w4 = |x: &[u8], k: usize| x.get(k..k + 4).and_then(|a| <[u8; 4]>::try_from(a).ok());
    if n >= 8 {
        // Whole words, the last one overlapping the one before.
        let mut k = 0;
        loop {
            if w8(s, k) != w8(lit, k) {
                return false;
            }
            if k + 8 == n {
                return true;
            }
            k = (k + 8).min(n - 8);
        }
    } else if n >= 4 {
        w4(s, 0) == w4(lit, 0) && w4(s, n - 4) == w4(lit, n - 4)
    } else {
        s == lit
    }
}

#[cfg(test)]
mod tests {
    use super::same_at;

    #[test]
    fn same_at_compares_every_byte() {
        let lit: Vec<u8> = (0..40u8).map(|b| b + 33).collect();
        for n in 0..lit.len() {
            let lit = &lit[..n];
            let mut d = b"xx".to_vec();
            d.extend_from_slice(lit);
            assert!(same_at(&d, 2, lit), "{n}");
            assert!(
                !same_at(&d, 2, &[lit, b"!"].concat()),
                "longer than the input: {n}"
            );
            for k in 0..n {
                let mut e = d.clone();
                e[2 + k] ^= 1;
                assert!(!same_at(&e, 2, lit), "byte {k} of {n}");
            }
        }
    }
}
