//! Per-record slots (one per planned field, plus row-filter fields the plan does not emit),
//! the row filter, masking, and the output writers (JSON object, CSV row).

use super::csv::write_cell;
use super::json::{self, compact, decode_str, write_str, PErr, VKind};
use super::shape::{Op, Program, Shape};
use super::{MaskError, MaskStats, OutputFormat};
use crate::mask::fingerprint::Marker;
use crate::mask::{MaskRule, Out, PseudonymKey, Scalar};
use crate::plan::{FieldAction, FieldPlan};
use crate::query::{ClientQuery, Decimal, FieldValue};
use crate::rowfilter::RowFilter;
use std::borrow::Cow;
use std::sync::Arc;

/// The detector safety net for `scan` fields.
#[inline]
pub(super) fn scrub(s: &str) -> (Cow<'_, str>, u32) {
    crate::mask::detect::scrub_counted(s)
}

/// The first eight bytes of `k`, zero-padded.
#[inline]
fn prefix(k: &[u8]) -> u64 {
    match k.get(..8).and_then(|a| <[u8; 8]>::try_from(a).ok()) {
        Some(a) => u64::from_le_bytes(a),
        None => k.iter().rev().fold(0, |w, &b| (w << 8) | u64::from(b)),
    }
}

/// Whether a name is not empty and needs no escapes in JSON.
fn is_plain(name: &[u8]) -> bool {
    !name.is_empty() && json::find_special(name, 0) == name.len()
}

/// What happens to the value of one slot.
#[derive(Debug, Clone)]
pub(super) enum SlotAction {
    /// Written as it is (scrubbed when `scan`).
    Emit { scan: bool },
    /// Written masked.
    Mask(MaskRule),
    /// Only read by the row filter (or dropped by a `Drop` rule): never written.
    Hidden,
    /// Written marked for the licensee; `key_slot` holds the record's key.
    Fingerprint {
        marker: Arc<Marker>,
        key_slot: usize,
        scan: bool,
    },
}

/// One slot: a field name (decoded bytes), its action, and its key as canonical JSON.
#[derive(Debug)]
pub(super) struct SlotDef {
    name: Box<[u8]>,
    /// The first eight bytes of the name, for a quick comparison.
    prefix: u64,
    /// The name is not empty and needs no escapes in JSON.
    plain: bool,
    action: SlotAction,
    key_json: Box<[u8]>,
}

impl SlotDef {
    /// A slot only read (a filter's field, a record key): never written.
    fn hidden(name: &str) -> SlotDef {
        SlotDef {
            name: name.as_bytes().into(),
            prefix: prefix(name.as_bytes()),
            plain: is_plain(name.as_bytes()),
            action: SlotAction::Hidden,
            key_json: Box::default(),
        }
    }
}

/// The slot table of a plan.
#[derive(Debug)]
pub(super) struct Slots {
    defs: Vec<SlotDef>,
    /// The first `n_plan` slots are the plan's fields, in plan order.
    n_plan: usize,
    filter: Option<RowFilter>,
    /// The licensee's own filters, ANDed to the row filter (never widening it).
    query: Option<Arc<ClientQuery>>,
    /// Distinct field names either filter reads, and their slots.
    filter_slots: Vec<(String, usize)>,
}

impl Slots {
    pub(super) fn new(plan: &FieldPlan, query: Option<Arc<ClientQuery>>) -> Self {
        let mut defs: Vec<SlotDef> = plan
            .fields
            .iter()
            .map(|f| {
                let action = match &f.action {
                    FieldAction::Emit { scan } => SlotAction::Emit { scan: *scan },
                    FieldAction::Mask(MaskRule::Clear) => SlotAction::Emit { scan: false },
                    FieldAction::Mask(MaskRule::Drop) => SlotAction::Hidden,
                    FieldAction::Mask(rule) => SlotAction::Mask(rule.clone()),
                    FieldAction::Fingerprint { marker, scan } => SlotAction::Fingerprint {
                        marker: marker.clone(),
                        scan: *scan,
                        // Set below, once every planned field has its slot.
                        key_slot: usize::MAX,
                    },
                };
                let mut key_json = Vec::new();
                write_str(f.name.as_bytes(), &mut key_json);
                key_json.push(b':');
                SlotDef {
                    name: f.name.as_bytes().into(),
                    prefix: prefix(f.name.as_bytes()),
                    plain: is_plain(f.name.as_bytes()),
                    action,
                    key_json: key_json.into(),
                }
            })
            .collect();
        let n_plan = defs.len();
        let mut filter_slots: Vec<(String, usize)> = Vec::new();
        let row_fields = plan.row_filter.iter().flat_map(|f| f.fields());
        let query_fields = query
            .iter()
            .flat_map(|q| q.filters.iter().map(|f| f.column.as_str()));
        {
            for name in row_fields.chain(query_fields) {
                if filter_slots.iter().any(|(n, _)| n == name) {
                    continue;
                }
                filter_slots.push((name.to_owned(), read_slot(&mut defs, name)));
            }
        }
        // A marked field reads the record's key, planned or not.
        for s in 0..n_plan {
            let SlotAction::Fingerprint { marker, .. } = &defs[s].action else {
                continue;
            };
            let name = marker.record_key.clone();
            let slot = read_slot(&mut defs, &name);
            if let SlotAction::Fingerprint { key_slot, .. } = &mut defs[s].action {
                *key_slot = slot;
            }
        }
        Self {
            defs,
            n_plan,
            filter: plan.row_filter.clone(),
            query: query.filter(|q| !q.filters.is_empty()),
            filter_slots,
        }
    }

    /// The slot that reads the member `name`: its planned slot, or a hidden one (added if
    /// needed), whose value is read but never written.
    pub(super) fn read(&mut self, name: &str) -> usize {
        read_slot(&mut self.defs, name)
    }

    /// Number of slots.
    pub(super) fn len(&self) -> usize {
        self.defs.len()
    }

    /// Number of the plan's fields (the first slots, in plan order).
    pub(super) fn n_plan(&self) -> usize {
        self.n_plan
    }

    /// Whether the plan writes the value of `slot` as it is (no mask, no scan).
    pub(super) fn copies(&self, slot: usize) -> bool {
        matches!(self.defs[slot].action, SlotAction::Emit { scan: false })
    }

    /// The slot of a decoded field name (first slot of that name).
    #[inline]
    pub(super) fn find(&self, key: &[u8]) -> Option<usize> {
        self.find_with(key, prefix(key))
    }

    /// Whether `d[at..]` is the name of `slot` (plain: written without escapes) followed by
    /// a quote; returns the index after the quote.
    #[inline]
    pub(super) fn name_at(&self, slot: usize, d: &[u8], at: usize) -> Option<usize> {
        let def = self.defs.get(slot)?;
        let name = &*def.name;
        let n = name.len();
        if !def.plain || d.get(at + n) != Some(&b'"') {
            return None;
        }
        let word = |s: &[u8], k: usize| s.get(k..k + 8).and_then(|a| <[u8; 8]>::try_from(a).ok());
        let same = if n >= 8 {
            // Whole words, the last one overlapping the one before.
            let mut k = 0;
            loop {
                if word(d, at + k) != word(name, k) {
                    break false;
                }
                if k + 8 == n {
                    break true;
                }
                k = (k + 8).min(n - 8);
            }
        } else {
            match word(d, at) {
                Some(a) => u64::from_le_bytes(a) & ((1u64 << (8 * n)) - 1) == def.prefix,
                None => &d[at..at + n] == name,
            }
        };
        same.then_some(at + n + 1)
    }

    /// The slot of the name `d[start..end]`, reading its prefix from the slice in one load
    /// when the slice extends far enough.
    #[inline]
    pub(super) fn find_in(&self, d: &[u8], start: usize, end: usize) -> Option<usize> {
        let key = &d[start..end];
        let p = match d.get(start..start + 8).and_then(|a| <[u8; 8]>::try_from(a).ok()) {
            Some(a) if key.len() >= 8 => u64::from_le_bytes(a),
            Some(a) => u64::from_le_bytes(a) & ((1u64 << (8 * key.len())) - 1),
            None => prefix(key),
        };
        self.find_with(key, p)
    }

    #[inline]
    fn find_with(&self, key: &[u8], p: u64) -> Option<usize> {
        self.defs.iter().position(|d| {
            d.prefix == p && d.name.len() == key.len() && (key.len() <= 8 || d.name[8..] == key[8..])
        })
    }

    /// Writes the CSV header row: the plan's field names.
    pub(super) fn write_csv_header(&self, out: &mut Vec<u8>) {
        for (n, d) in self.defs[..self.n_plan].iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_cell(&d.name, self.n_plan == 1 && d.name.is_empty(), out);
        }
        out.push(b'\n');
    }
}

/// Where a slot's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A JSON value as scanned (string: the body, raw).
    Json(VKind),
    /// Decoded text (a CSV cell); `quoted`: it may hold commas, quotes, CR or LF.
    Text { quoted: bool },
}

/// One field value of the current record: `input[start..end]`, or `Record::buf` when `in_buf`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Val {
    pub kind: Kind,
    pub in_buf: bool,
    pub start: usize,
    pub end: usize,
    /// JSON: the input range of the whole member (`"name":value`) when it is canonical, so
    /// that it may be copied as it is.
    pub member: Option<(usize, usize)>,
}

/// The text the row filter sees for one field.
#[derive(Debug, Clone, Copy)]
enum FText {
    None,
    Static(&'static str),
    Input(usize, usize),
    RecBuf(usize, usize),
    FBuf(usize, usize),
}

/// The type of a field's original value, for the client's typed filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FType {
    Null,
    Bool(bool),
    Number,
    String,
    /// A CSV cell: a number when it reads as one, text otherwise.
    Cell,
    Composite,
}

/// Longest member name remembered as unplanned at its position.
const UNPLANNED_NAME: usize = 30;

/// What a member position held in the last record: records usually repeat their member
/// order, so the next record's name there is compared with it before being scanned.
#[derive(Debug, Clone, Copy)]
enum Hint {
    /// Nothing remembered.
    Unknown,
    /// The plain name of this slot.
    Slot(u32),
    /// A name without escapes that no slot has (its value is dropped): `name[..len]`.
    Unplanned { len: u8, name: [u8; UNPLANNED_NAME] },
}

/// The state of the current record, reused across records.
#[derive(Debug, Default)]
pub(super) struct Record {
    /// One value per slot.
    pub vals: Vec<Option<Val>>,
    /// Decoded CSV cells.
    pub buf: Vec<u8>,
    /// Values dropped while reading (not planned, or duplicates).
    pub dropped: u64,
    /// What each member position held in the last record that had it.
    hints: Vec<Hint>,
    scratch: Vec<u8>,
    /// The decoded key of the record, for marks.
    keybuf: Vec<u8>,
    /// The text of a masked value.
    masked: String,
    fbuf: Vec<u8>,
    /// Per filter slot: the text the row filter sees and the value's type.
    fvals: Vec<(FText, FType)>,
    /// Pseudonyms computed in this response.
    pseudonyms: PseudonymCache,
}

/// Pseudonyms already computed in one response, by the text they hash: a value that repeats
/// (an enterprise in each month's row) is hashed once. A value is kept only when it comes a
/// second time (a bit per hash bucket remembers what was seen), so the many values of a page
/// that never repeat cost no allocation; a response whose values do not repeat turns the cache
/// off after its first lookups.
#[derive(Debug, Default)]
struct PseudonymCache {
    map: std::collections::HashMap<Box<str>, Box<str>>,
    /// One bit per hash bucket of the values seen.
    seen: [u64; 16],
    lookups: u32,
    hits: u32,
    off: bool,
}

impl PseudonymCache {
    /// Most values kept: with the longest, about 35 KB per response at worst (a thousand
    /// streams held by clients that do not read must not hold much more).
    const MAX_ENTRIES: usize = 256;
    /// Longest value kept.
    const MAX_LEN: usize = 64;
    /// Lookups after which a cache that hit less than 1 in 16 turns itself off.
    const TRIAL: u32 = 1024;

    /// The pseudonym of the text `s` in `text` (cleared first), from the cache when it can.
    fn pseudonym(&mut self, s: &str, key: &PseudonymKey, text: &mut String) {
        text.clear();
        if self.off || s.len() > Self::MAX_LEN {
            return key.pseudonym_into(&[s.as_bytes()], text);
        }
        self.lookups += 1;
        let bucket = (bucket_hash(s.as_bytes()) >> 54) as usize;
        let (word, bit) = (bucket / 64, 1u64 << (bucket % 64));
        if self.seen[word] & bit == 0 {
            // Not seen before: computed, not kept.
            self.seen[word] |= bit;
            key.pseudonym_into(&[s.as_bytes()], text);
        } else {
            match self.map.get(s) {
                Some(p) => {
                    self.hits += 1;
                    text.push_str(p);
                }
                None => {
                    key.pseudonym_into(&[s.as_bytes()], text);
                    if self.map.len() < Self::MAX_ENTRIES {
                        self.map.insert(s.into(), text.as_str().into());
                    }
                }
            }
        }
        if self.lookups == Self::TRIAL && self.hits < Self::TRIAL / 16 {
            self.off = true;
            self.map = std::collections::HashMap::new();
        }
    }
}

/// A quick hash of a short value (a word at a time), for [`PseudonymCache::seen`]: its top ten
/// bits pick the bucket. Not keyed: it only decides what is cached, never what is written.
#[inline]
fn bucket_hash(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = K ^ b.len() as u64;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        h = (h ^ <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes)).wrapping_mul(K);
        h ^= h >> 32;
    }
    let tail = words
        .remainder()
        .iter()
        .rev()
        .fold(0u64, |t, &x| (t << 8) | u64::from(x));
    h = (h ^ tail).wrapping_mul(K);
    h ^ (h >> 29)
}

fn internal(msg: &'static str) -> MaskError {
    MaskError::InvalidJson { offset: 0, msg }
}

fn utf8(b: &[u8]) -> Result<&str, MaskError> {
    std::str::from_utf8(b).map_err(|_| internal("invalid UTF-8"))
}

fn perr(e: PErr) -> MaskError {
    match e {
        PErr::More => MaskError::Truncated,
        PErr::Bad(_, msg) => internal(msg),
    }
}

/// Counters of one record, added to the stats once it is written.
#[derive(Default)]
struct Counts {
    emitted: u64,
    masked: u64,
    dropped: u64,
    hits: u64,
}

impl Record {
    /// The text of the value in `slot` when it is a string or a number (a record key).
    pub(super) fn key_text<'s>(
        &'s mut self,
        slot: usize,
        text: &'s str,
    ) -> Result<Option<&'s str>, MaskError> {
        let v = self.vals.get(slot).copied().flatten();
        key_text(v, text, &self.buf, &mut self.keybuf)
    }

    /// Clears the record for `slots` slots.
    #[inline]
    pub(super) fn reset(&mut self, slots: usize) {
        self.vals.clear();
        self.vals.resize(slots, None);
        self.dropped = 0;
    }

    /// When the name of the `n`th member, whose body starts at `d[at]`, is the one that
    /// member had last time: its slot (`None`: unplanned) and the index after its closing
    /// quote.
    #[inline]
    pub(super) fn hinted(
        &self,
        n: usize,
        slots: &Slots,
        d: &[u8],
        at: usize,
    ) -> Option<(Option<usize>, usize)> {
        match self.hints.get(n)? {
            Hint::Unknown => None,
            Hint::Slot(s) => {
                let s = *s as usize;
                slots.name_at(s, d, at).map(|kend| (Some(s), kend))
            }
            Hint::Unplanned { len, name } => {
                // The remembered name holds no quote or backslash: equal bytes followed by a
                // quote are that very name.
                let n = usize::from(*len);
                (d.get(at..at + n)? == &name[..n] && d.get(at + n) == Some(&b'"'))
                    .then_some((None, at + n + 1))
            }
        }
    }

    /// Remembers what the `n`th member held (the first 64 members): its slot, or for an
    /// unplanned name without escapes (`raw`: its bytes in the input) the name itself.
    #[inline]
    pub(super) fn set_hint(&mut self, n: usize, slot: Option<usize>, raw: Option<&[u8]>) {
        if n >= 64 {
            return;
        }
        if self.hints.len() <= n {
            self.hints.resize(n + 1, Hint::Unknown);
        }
        self.hints[n] = match (slot, raw) {
            (Some(s), _) => Hint::Slot(s as u32),
            (None, Some(raw)) if raw.len() <= UNPLANNED_NAME => {
                let mut name = [0u8; UNPLANNED_NAME];
                name[..raw.len()].copy_from_slice(raw);
                Hint::Unplanned {
                    len: raw.len() as u8,
                    name,
                }
            }
            (None, _) => Hint::Unknown,
        };
    }

    /// Stores a value for `slot` unless the record already holds one (first wins).
    #[inline]
    pub(super) fn set(&mut self, slot: Option<usize>, val: Val) {
        match slot.and_then(|s| self.vals.get_mut(s)) {
            Some(v @ None) => *v = Some(val),
            _ => self.dropped += 1,
        }
    }

    /// Evaluates the row filter, then the client's filters, on the original values.
    fn passes(&mut self, slots: &Slots, text: &str) -> Result<bool, MaskError> {
        if slots.filter.is_none() && slots.query.is_none() {
            return Ok(true);
        }
        let input = text.as_bytes();
        self.fbuf.clear();
        self.fvals.clear();
        for (_, slot) in &slots.filter_slots {
            let (t, ty) = match self.vals[*slot] {
                None => (FText::None, FType::Null),
                Some(v) => match v.kind {
                    Kind::Json(VKind::Str { esc: true }) => {
                        let s = self.fbuf.len();
                        decode_str(&input[v.start..v.end], &mut self.fbuf).map_err(perr)?;
                        (FText::FBuf(s, self.fbuf.len()), FType::String)
                    }
                    Kind::Json(VKind::True) => (FText::Static("true"), FType::Bool(true)),
                    Kind::Json(VKind::False) => (FText::Static("false"), FType::Bool(false)),
                    Kind::Json(VKind::Null) => (FText::None, FType::Null),
                    Kind::Json(VKind::Composite) => (FText::None, FType::Composite),
                    kind => {
                        let ty = match kind {
                            Kind::Json(VKind::Num) => FType::Number,
                            Kind::Json(_) => FType::String,
                            Kind::Text { .. } => FType::Cell,
                        };
                        if v.in_buf {
                            (FText::RecBuf(v.start, v.end), ty)
                        } else {
                            (FText::Input(v.start, v.end), ty)
                        }
                    }
                },
            };
            self.fvals.push((t, ty));
        }
        let (fbuf, buf, fvals) = (&self.fbuf, &self.buf, &self.fvals);
        let text_of = |k: usize| match fvals[k].0 {
            FText::None => None,
            FText::Static(s) => Some(s),
            FText::Input(s, e) => text.get(s..e),
            FText::RecBuf(s, e) => std::str::from_utf8(&buf[s..e]).ok(),
            FText::FBuf(s, e) => std::str::from_utf8(&fbuf[s..e]).ok(),
        };
        let slot_of = |name: &str| slots.filter_slots.iter().position(|(n, _)| n == name);
        if let Some(filter) = &slots.filter {
            if !filter.matches(|name| text_of(slot_of(name)?)) {
                return Ok(false);
            }
        }
        let Some(query) = &slots.query else {
            return Ok(true);
        };
        Ok(query.matches(|name| {
            let k = slot_of(name)?;
            Some(match fvals[k].1 {
                FType::Null => FieldValue::Null,
                FType::Bool(b) => FieldValue::Bool(b),
                FType::Composite => FieldValue::Composite,
                FType::Number => FieldValue::Number(text_of(k)?),
                FType::String => FieldValue::String(text_of(k)?),
                FType::Cell => {
                    let t = text_of(k)?;
                    if Decimal::parse(t).is_some() {
                        FieldValue::Number(t)
                    } else {
                        FieldValue::String(t)
                    }
                }
            })
        }))
    }

    /// Writes the record to `out` if it passes the row filter; returns whether it was written.
    /// `first`: no record was written before (JSON arrays need no comma). `shape`: the record
    /// was parsed by this shape, whose program writes it when it can (the same bytes as the
    /// field-by-field writer). On error nothing of the record is left in `out`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write(
        &mut self,
        slots: &Slots,
        key: &PseudonymKey,
        text: &str,
        fmt: OutputFormat,
        first: bool,
        shape: Option<&Shape>,
        out: &mut Vec<u8>,
        stats: &mut MaskStats,
    ) -> Result<bool, MaskError> {
        if !self.passes(slots, text)? {
            return Ok(false);
        }
        let mark = out.len();
        let mut c = Counts {
            dropped: self.dropped,
            ..Counts::default()
        };
        let r = match shape.and_then(|s| s.program(fmt)) {
            Some(p) => self.write_program(p, slots, key, text, fmt, first, out, &mut c),
            None => self.write_fields(slots, key, text, fmt, first, out, &mut c),
        };
        match r {
            Ok(()) => {
                stats.fields_emitted += c.emitted;
                stats.fields_masked += c.masked;
                stats.fields_dropped += c.dropped;
                stats.detector_hits += c.hits;
                Ok(true)
            }
            Err(e) => {
                out.truncate(mark);
                Err(e)
            }
        }
    }

    /// The writer of one slot's value, over this record's buffers.
    fn slot_writer<'a>(&'a mut self, key: &'a PseudonymKey, text: &'a str, csv: bool) -> SlotWriter<'a> {
        SlotWriter {
            text,
            vals: &self.vals,
            buf: &self.buf,
            scratch: &mut self.scratch,
            keybuf: &mut self.keybuf,
            mtext: &mut self.masked,
            pseudonyms: &mut self.pseudonyms,
            key,
            csv,
        }
    }

    /// Writes a JSON object by a shape's program: runs of members copied as they are, the
    /// other slots one by one.
    #[allow(clippy::too_many_arguments)]
    fn write_program(
        &mut self,
        Program { ops, spans }: Program<'_>,
        slots: &Slots,
        key: &PseudonymKey,
        text: &str,
        fmt: OutputFormat,
        first: bool,
        out: &mut Vec<u8>,
        c: &mut Counts,
    ) -> Result<(), MaskError> {
        let input = text.as_bytes();
        if fmt == OutputFormat::Json && !first {
            out.push(b',');
        }
        out.push(b'{');
        let mut any = false;
        let mut w = self.slot_writer(key, text, false);
        for op in ops {
            match *op {
                Op::Copy { from, to } => {
                    if any {
                        out.push(b',');
                    }
                    out.extend_from_slice(&input[spans[from].0..spans[to].1]);
                    any = true;
                    c.emitted += (to - from + 1) as u64;
                }
                Op::Slot(s) => {
                    if let Some(v) = w.vals[s] {
                        w.slot(&slots.defs[s], v, &mut any, out, c)?;
                    }
                }
            }
        }
        out.push(b'}');
        if fmt == OutputFormat::Ndjson {
            out.push(b'\n');
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn write_fields(
        &mut self,
        slots: &Slots,
        key: &PseudonymKey,
        text: &str,
        fmt: OutputFormat,
        first: bool,
        out: &mut Vec<u8>,
        c: &mut Counts,
    ) -> Result<(), MaskError> {
        let input = text.as_bytes();
        let csv = fmt == OutputFormat::Csv;
        let row_start = out.len();
        if !csv {
            if fmt == OutputFormat::Json && !first {
                out.push(b',');
            }
            out.push(b'{');
        }
        let mut any = false;
        let mut w = self.slot_writer(key, text, csv);
        // Input bytes still to copy: runs of canonical members that are adjacent in the input
        // and in the output are copied at once.
        let mut pend: Option<(usize, usize)> = None;
        let flush = |pend: &mut Option<(usize, usize)>, out: &mut Vec<u8>| {
            if let Some((s, e)) = pend.take() {
                out.extend_from_slice(&input[s..e]);
            }
        };
        // CSV: the slot of the last cell in `pend`.
        let mut pend_slot = 0;
        for (s, def) in slots.defs[..slots.n_plan].iter().enumerate() {
            let val = w.vals[s];
            if csv {
                // Unquoted CSV cells written as they are: runs of cells that are adjacent in
                // the input and in the output are copied at once, with their commas.
                if let (SlotAction::Emit { scan: false }, Some(v)) = (&def.action, val) {
                    if v.kind == (Kind::Text { quoted: false }) && !v.in_buf {
                        match pend {
                            Some((ps, pe))
                                if pend_slot + 1 == s && v.start == pe + 1 && input[pe] == b',' =>
                            {
                                pend = Some((ps, v.end))
                            }
                            _ => {
                                flush(&mut pend, out);
                                if s > 0 {
                                    out.push(b',');
                                }
                                pend = Some((v.start, v.end));
                            }
                        }
                        pend_slot = s;
                        any = true;
                        c.emitted += 1;
                        continue;
                    }
                }
                flush(&mut pend, out);
                if s > 0 {
                    out.push(b',');
                }
            }
            let Some(v) = val else { continue };
            if let (SlotAction::Emit { scan: false }, Some((ms, me)), false) = (&def.action, v.member, csv) {
                match pend {
                    Some((ps, pe)) if ms == pe + 1 && input[pe] == b',' => pend = Some((ps, me)),
                    _ => {
                        flush(&mut pend, out);
                        if any {
                            out.push(b',');
                        }
                        pend = Some((ms, me));
                    }
                }
                any = true;
                c.emitted += 1;
                continue;
            }
            flush(&mut pend, out);
            w.slot(def, v, &mut any, out, c)?;
        }
        flush(&mut pend, out);
        if csv {
            if slots.n_plan == 1 && out.len() == row_start {
                // A lone empty cell would read as a blank line.
                out.extend_from_slice(b"\"\"");
            }
            out.push(b'\n');
        } else {
            out.push(b'}');
            if fmt == OutputFormat::Ndjson {
                out.push(b'\n');
            }
        }
        Ok(())
    }
}

/// Writes one slot's value (masked, scrubbed or as it is) over one record's buffers.
struct SlotWriter<'a> {
    /// The valid UTF-8 input holding the record.
    text: &'a str,
    /// The record's value of each slot.
    vals: &'a [Option<Val>],
    /// Decoded CSV cells.
    buf: &'a [u8],
    scratch: &'a mut Vec<u8>,
    keybuf: &'a mut Vec<u8>,
    /// The text of a masked value.
    mtext: &'a mut String,
    pseudonyms: &'a mut PseudonymCache,
    key: &'a PseudonymKey,
    csv: bool,
}

impl SlotWriter<'_> {
    /// Writes the value `v` of the slot `def` unless its action drops it; in JSON with its
    /// name, after a comma when `any` (set once something is written).
    fn slot(
        &mut self,
        def: &SlotDef,
        v: Val,
        any: &mut bool,
        out: &mut Vec<u8>,
        c: &mut Counts,
    ) -> Result<(), MaskError> {
        let (text, buf, csv, key) = (self.text, self.buf, self.csv, self.key);
        let input = text.as_bytes();
        let masked = match &def.action {
            SlotAction::Hidden => {
                c.dropped += 1;
                return Ok(());
            }
            SlotAction::Emit { scan: false } => Res::Plain,
            SlotAction::Fingerprint {
                marker,
                key_slot,
                scan,
            } => {
                let key = key_text(
                    self.vals.get(*key_slot).copied().flatten(),
                    text,
                    buf,
                    self.keybuf,
                )?;
                let value = scalar(v, text, buf, self.scratch)?;
                let marked = match (key, value) {
                    (Some(k), Scalar::Str(t) | Scalar::Num(t)) => {
                        marker.mark(k.as_bytes(), utf8(&def.name)?, t).map(|m| (m, value))
                    }
                    _ => None,
                };
                // The safety net reads the value as the source wrote it (a mark may hide a
                // match, e.g. a mobile number given decimals) and as it would leave.
                let original = match value {
                    Scalar::Str(t) | Scalar::Num(t) if *scan => match scrub(t) {
                        (Cow::Owned(t), n) => Some((t, n)),
                        (Cow::Borrowed(_), _) => None,
                    },
                    _ => None,
                };
                match marked {
                    _ if original.is_some() => {
                        let (t, n) = original.unwrap_or_default();
                        c.hits += u64::from(n);
                        Res::Scrubbed(t)
                    }
                    Some((m, value)) => match if *scan { scrub(&m) } else { (Cow::Borrowed(""), 0) } {
                        (Cow::Owned(t), n) => {
                            c.hits += u64::from(n);
                            Res::Scrubbed(t)
                        }
                        (Cow::Borrowed(_), _) => {
                            self.mtext.clear();
                            self.mtext.push_str(&m);
                            // A number stays a number, a number in a string stays a string.
                            Res::Masked(if matches!(value, Scalar::Num(_)) {
                                Out::Num
                            } else {
                                Out::Str
                            })
                        }
                    },
                    None => Res::Plain,
                }
            }
            SlotAction::Emit { scan: true } => {
                if v.kind == Kind::Json(VKind::Composite) {
                    Res::Plain
                } else {
                    match scalar(v, text, buf, self.scratch)? {
                        Scalar::Str(t) | Scalar::Num(t) => {
                            let (t, n) = scrub(t);
                            c.hits += u64::from(n);
                            match t {
                                Cow::Owned(t) => Res::Scrubbed(t),
                                Cow::Borrowed(_) => Res::Plain,
                            }
                        }
                        _ => Res::Plain,
                    }
                }
            }
            SlotAction::Mask(rule) => {
                c.masked += 1;
                let value = scalar(v, text, buf, self.scratch)?;
                let out = match (rule, value) {
                    // Strings and numbers hash their text (as `MaskRule::apply` does).
                    (MaskRule::Pseudonym, Scalar::Str(t) | Scalar::Num(t)) => {
                        self.pseudonyms.pseudonym(t, key, self.mtext);
                        Out::Str
                    }
                    _ => rule.apply_into(value, key, self.mtext),
                };
                match out {
                    Out::Keep => Res::Plain,
                    Out::Omit => {
                        c.masked -= 1;
                        c.dropped += 1;
                        return Ok(());
                    }
                    m => Res::Masked(m),
                }
            }
        };
        if !csv {
            if *any {
                out.push(b',');
            }
            out.extend_from_slice(&def.key_json);
        }
        *any = true;
        c.emitted += 1;
        let mtext = self.mtext.as_bytes();
        match masked {
            Res::Plain => {
                let scan = matches!(
                    def.action,
                    SlotAction::Emit { scan: true } | SlotAction::Fingerprint { scan: true, .. }
                );
                write_plain(v, scan, input, buf, self.scratch, csv, out, &mut c.hits)?;
            }
            Res::Scrubbed(t) => write_text(t.as_bytes(), csv, out),
            Res::Masked(Out::Str) => write_text(mtext, csv, out),
            Res::Masked(Out::Num) if json::is_number(mtext) => out.extend_from_slice(mtext),
            Res::Masked(Out::Num) => write_text(mtext, csv, out),
            Res::Masked(_) => {
                if !csv {
                    out.extend_from_slice(b"null");
                }
            }
        }
        Ok(())
    }
}

/// What to write for one slot.
enum Res {
    /// The value unchanged.
    Plain,
    /// The value rewritten by the detector.
    Scrubbed(String),
    /// The value masked (the text is in `Record::masked`).
    Masked(Out),
}

/// The value of a slot as the masking functions see it (strings decoded, composites compact).
/// `text`: the valid UTF-8 input holding the record.
/// The slot among `defs` that reads the member `name`, added as hidden if there is none.
fn read_slot(defs: &mut Vec<SlotDef>, name: &str) -> usize {
    match defs.iter().position(|d| &*d.name == name.as_bytes()) {
        Some(s) => s,
        None => {
            defs.push(SlotDef::hidden(name));
            defs.len() - 1
        }
    }
}

/// The text of a record's key value (a string's or a number's); `None` for anything else or
/// a missing one.
pub(super) fn key_text<'s>(
    v: Option<Val>,
    text: &'s str,
    buf: &'s [u8],
    scratch: &'s mut Vec<u8>,
) -> Result<Option<&'s str>, MaskError> {
    Ok(match v {
        Some(v) => match scalar(v, text, buf, scratch)? {
            Scalar::Str(t) | Scalar::Num(t) => Some(t),
            _ => None,
        },
        None => None,
    })
}

fn scalar<'s>(
    v: Val,
    text: &'s str,
    buf: &'s [u8],
    scratch: &'s mut Vec<u8>,
) -> Result<Scalar<'s>, MaskError> {
    let input = text.as_bytes();
    let raw = || {
        if v.in_buf {
            &buf[v.start..v.end]
        } else {
            &input[v.start..v.end]
        }
    };
    // A value read from the input is a slice of valid text: its ends are character
    // boundaries (next to ASCII delimiters), so it needs no second validation.
    let input_str = || match text.get(v.start..v.end) {
        Some(t) if !v.in_buf => Ok(t),
        _ => utf8(raw()),
    };
    Ok(match v.kind {
        Kind::Text { .. } | Kind::Json(VKind::Str { esc: false }) => Scalar::Str(input_str()?),
        Kind::Json(VKind::Str { esc: true }) => {
            scratch.clear();
            decode_str(raw(), scratch).map_err(perr)?;
            Scalar::Str(utf8(scratch)?)
        }
        Kind::Json(VKind::Num) => Scalar::Num(input_str()?),
        Kind::Json(VKind::True) => Scalar::Bool(true),
        Kind::Json(VKind::False) => Scalar::Bool(false),
        Kind::Json(VKind::Null) => Scalar::Null,
        Kind::Json(VKind::Composite) => {
            scratch.clear();
            compact(input, v.start, None, &mut 0, scratch).map_err(perr)?;
            Scalar::Composite(utf8(scratch)?)
        }
    })
}

/// Writes decoded text as a JSON string or a CSV cell.
#[inline]
fn write_text(t: &[u8], csv: bool, out: &mut Vec<u8>) {
    if csv {
        write_cell(t, false, out);
    } else {
        write_str(t, out);
    }
}

/// Writes a value unchanged (JSON: canonical, a string without escapes copied as it is;
/// composites compact, their strings, member names and numbers scrubbed when `scan`).
#[allow(clippy::too_many_arguments)]
#[inline]
fn write_plain(
    v: Val,
    scan: bool,
    input: &[u8],
    buf: &[u8],
    scratch: &mut Vec<u8>,
    csv: bool,
    out: &mut Vec<u8>,
    hits: &mut u64,
) -> Result<(), MaskError> {
    let raw = if v.in_buf {
        &buf[v.start..v.end]
    } else {
        &input[v.start..v.end]
    };
    match v.kind {
        Kind::Json(VKind::Str { esc: false }) => {
            if csv {
                write_cell(raw, false, out);
            } else {
                out.push(b'"');
                out.extend_from_slice(raw);
                out.push(b'"');
            }
        }
        Kind::Json(VKind::Str { esc: true }) => {
            scratch.clear();
            decode_str(raw, scratch).map_err(perr)?;
            write_text(scratch, csv, out);
        }
        Kind::Json(VKind::Num | VKind::True | VKind::False) => out.extend_from_slice(raw),
        Kind::Json(VKind::Null) => {
            if !csv {
                out.extend_from_slice(b"null");
            }
        }
        Kind::Json(VKind::Composite) => {
            let sc: Option<json::Scrub<'_>> = if scan { Some(&scrub) } else { None };
            if csv {
                scratch.clear();
                compact(input, v.start, sc, hits, scratch).map_err(perr)?;
                write_cell(scratch, false, out);
            } else {
                compact(input, v.start, sc, hits, out).map_err(perr)?;
            }
        }
        Kind::Text { quoted } => {
            if !csv {
                write_str(raw, out);
            } else if quoted {
                write_cell(raw, false, out);
            } else {
                out.extend_from_slice(raw);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod pseudonym_cache_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cached_pseudonyms_equal_computed_ones_and_a_cache_that_never_hits_turns_off() {
        let key = PseudonymKey::derive(b"m", "acme", "d");
        let mut cache = PseudonymCache::default();
        let mut text = String::new();
        for round in 0..3 {
            for v in ["Acme Ltd", "42", "上海宏泰医药有限公司", ""] {
                cache.pseudonym(v, &key, &mut text);
                assert_eq!(text, key.pseudonym(v.as_bytes()), "{v} in round {round}");
            }
        }
        // Kept on their second coming, found on their third.
        assert_eq!(cache.hits, 4);
        let long = "x".repeat(PseudonymCache::MAX_LEN + 1);
        cache.pseudonym(&long, &key, &mut text);
        assert_eq!(text, key.pseudonym(long.as_bytes()));
        assert!(!cache.map.contains_key(long.as_str()), "long values are not kept");

        let mut unique = PseudonymCache::default();
        for i in 0..PseudonymCache::TRIAL + 10 {
            let v = format!("1380013{i:04}");
            unique.pseudonym(&v, &key, &mut text);
            assert_eq!(text, key.pseudonym(v.as_bytes()));
        }
        assert!(
            unique.off && unique.map.is_empty(),
            "values that never repeat turn it off"
        );
    }
}
