//! Parquet file sources: a `.parquet` file an agency publishes, or a folder of them read as
//! one dataset (`kind = "parquet"`, `path = "open-data/permits"`).
//!
//! A folder's files (`*.parquet` in any case; names starting with `.` or not UTF-8 are left
//! out, and so are subfolders) are read in byte order of name and listed again on every fetch.
//!
//! **Projection push-down.** A fetch reads only the columns its licence's plan names and the
//! columns its row filter and the licensee's filters read, column chunk by column chunk:
//! the pages of every other column are never read nor decoded. A plan naming a column the
//! files do not have reads nothing for it (the field is absent from every record; with no
//! column read at all there are no records). The first file's schema decides: every later file
//! of a folder must have the same type for each column read (and have, or lack, the same
//! ones); a file that differs ends the body with an error naming it and the column. A problem
//! with the first file (or an unreadable folder) fails the fetch before the body starts.
//!
//! Only flat columns are served: a top-level group, list or map, and a binary column (a byte
//! array that is not a string or a decimal), fail the page when a plan or filter names one.
//! Values are sent as typed rows ([`InputFormat::Rows`]):
//!
//! - strings: text (bytes that are not UTF-8 fail the page); booleans; integers (a `UINT64`
//!   beyond `i64` fails the page); `FLOAT` as its shortest text, `DOUBLE` as serde_json writes it;
//! - `DECIMAL`: a JSON number with exactly the file's digits (`10.50`);
//! - `DATE`: `2025-07-01`; `TIMESTAMP` (millis, micros, nanos) and legacy `INT96` timestamps:
//!   `2025-07-01 08:30:00`, with `.ffffff` (or `.fffffffff` for nanoseconds) when the second
//!   has a fraction, in UTC for UTC-adjusted timestamps and as written for local ones.
//!
//! Rows are read by a blocking thread in batches of [`BATCH_ROWS`] rows or [`BATCH_BYTES`]
//! bytes, handed over through a channel of two batches: the thread waits while the client
//! does not read and stops when the consumer goes away. A file has no server side: every
//! fetch streams from the first row, and the gateway skips earlier pages' records and applies
//! the filters ([`Paging::Stream`]).

use crate::source::{
    BodyError, BoxFuture, Connector, Fetch, FetchError, PageEnd, Paging, RowStream, SourceData,
};
use crate::table::{BATCH_BYTES, BATCH_ROWS};
use ::parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use ::parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use ::parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType, FloatType,
    Int32Type, Int64Type, Int96, Int96Type,
};
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::schema::types::ColumnDescriptor;
use serde::{Deserialize, Serialize};
use sluice_policy::stream::{InputFormat, RowBatch};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A Parquet source: `[sources.<dataset>] kind = "parquet"` and the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSourceConfig {
    /// A `.parquet` file, or a folder of them read in name order as one dataset (relative
    /// paths from the config file's folder).
    pub path: PathBuf,
    /// Longest wait for the first file's schema and for each batch of rows, ms.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
}

fn default_read_timeout() -> u64 {
    10_000
}

/// Why a Parquet source failed; a [`FetchError`] before the body and a [`BodyError`] in it.
/// No message carries a value read from a file.
#[derive(Debug, thiserror::Error)]
enum ParquetSourceError {
    /// Reading the folder or opening a file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The path is neither a file nor a folder.
    #[error("{}: neither a file nor a folder", .0.display())]
    NotAFile(PathBuf),
    /// The Parquet reader failed (not a Parquet file, a corrupt page, a codec not built in).
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: ::parquet::errors::ParquetError,
    },
    /// A column read is a group, a list or a map.
    #[error("{}: column {column:?} is nested (a group, list or map), which is not supported", path.display())]
    Nested { path: PathBuf, column: String },
    /// A column read has a type that cannot be served.
    #[error("{}: column {column:?} is {what}, which is not supported", path.display())]
    Unsupported {
        path: PathBuf,
        column: String,
        what: String,
    },
    /// A later file of a folder lacks a column read, has it with another type, or has one
    /// the first file lacks.
    #[error("{}: column {column:?} differs from that of {}", path.display(), first.display())]
    Differs {
        path: PathBuf,
        column: String,
        first: PathBuf,
    },
    /// A value cannot be served (text that is not UTF-8, an integer out of range…).
    #[error("{}: column {column:?}: {what}", path.display())]
    Value {
        path: PathBuf,
        column: String,
        what: &'static str,
    },
    /// A row group's columns hold different numbers of rows.
    #[error("{}: a row group's columns have different numbers of rows", .0.display())]
    Ragged(PathBuf),
}

impl From<ParquetSourceError> for FetchError {
    fn from(e: ParquetSourceError) -> Self {
        match e {
            ParquetSourceError::Io { .. } | ParquetSourceError::NotAFile(_) => {
                Self::Unreachable(e.to_string())
            }
            _ => Self::Source(e.to_string()),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ParquetSourceError + '_ {
    move |source| ParquetSourceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether a folder entry of this name is a Parquet file of the source.
fn takes(name: &std::ffi::OsStr) -> bool {
    const EXT: &str = ".parquet";
    name.to_str().is_some_and(|n| {
        !n.starts_with('.')
            && n.len() > EXT.len()
            && n.is_char_boundary(n.len() - EXT.len())
            && n[n.len() - EXT.len()..].eq_ignore_ascii_case(EXT)
    })
}

/// The source's files: the file itself, or the folder's `*.parquet` files in byte order of name.
fn list(path: &Path) -> Result<Vec<PathBuf>, ParquetSourceError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    if !meta.is_dir() {
        return Err(ParquetSourceError::NotAFile(path.to_owned()));
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_error(path))? {
        let entry = entry.map_err(io_error(path))?;
        let file = entry.path();
        // `fs::metadata` follows a symbolic link to the file it names.
        if takes(&entry.file_name()) && std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
            files.push(file);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Opens a file and reads its footer (schema and row groups).
fn open(path: &Path) -> Result<SerializedFileReader<std::fs::File>, ParquetSourceError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    SerializedFileReader::new(file).map_err(|source| ParquetSourceError::Read {
        path: path.to_owned(),
        source,
    })
}

impl ParquetSourceConfig {
    /// Problems with the config, as (relative path, message): the path must name a Parquet
    /// file, or a folder whose `*.parquet` files are all Parquet files (their footers are read).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.read_timeout_ms == 0 {
            out.push(("read_timeout_ms".into(), "must be positive".into()));
        }
        if self.path.as_os_str().is_empty() {
            out.push(("path".into(), "must not be empty".into()));
            return out;
        }
        let opened = list(&self.path).and_then(|files| files.iter().try_for_each(|f| open(f).map(drop)));
        if let Err(e) = opened {
            out.push(("path".into(), e.to_string()));
        }
        out
    }

    /// Makes a relative path relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        crate::config::resolve_path(base, &mut self.path);
    }
}

/// A Parquet source.
#[derive(Debug, Clone)]
pub struct ParquetSource {
    config: ParquetSourceConfig,
}

impl ParquetSource {
    /// The connector for `config` (files are opened at each fetch).
    pub fn new(config: ParquetSourceConfig) -> Self {
        Self { config }
    }
}

/// The columns a fetch reads, in order and once each: the plan's fields and the record key its
/// marks read, then the fields of the row filters and of the licensee's filters. `None` (no
/// plan: a check) reads every column that can be served.
fn wanted(fetch: &Fetch<'_>) -> Option<Vec<String>> {
    let plan = fetch.plan?;
    let mut out: Vec<String> = Vec::new();
    let names = plan
        .read_fields()
        .into_iter()
        .chain(plan.row_filter.iter().flat_map(|f| f.fields()))
        .chain(fetch.row_filter.into_iter().flat_map(|f| f.fields()))
        .chain(
            fetch
                .query
                .into_iter()
                .flat_map(|q| q.filters.iter().map(|f| f.column.as_str())),
        );
    for name in names {
        if !out.iter().any(|o| o == name) {
            out.push(name.to_owned());
        }
    }
    Some(out)
}

impl Connector for ParquetSource {
    fn input_format(&self) -> InputFormat {
        InputFormat::Rows
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.read_timeout_ms)
    }

    fn paging(&self) -> Paging {
        Paging::Stream
    }

    /// Streams the dataset's rows from the first; see the module documentation.
    fn fetch<'a>(&'a self, fetch: &'a Fetch<'a>) -> BoxFuture<'a, Result<SourceData, FetchError>> {
        Box::pin(async move {
            let job = Job {
                path: self.config.path.clone(),
                wanted: wanted(fetch),
            };
            let (tx, rx) = mpsc::channel(2);
            let (started_tx, started) = oneshot::channel();
            tokio::task::spawn_blocking(move || job.run(started_tx, tx));
            let wait = self.read_timeout();
            let columns = match tokio::time::timeout(wait, started).await {
                Err(_) => return Err(FetchError::Timeout(wait)),
                Ok(Err(_)) => return Err(FetchError::Source("the Parquet reader stopped".into())),
                Ok(Ok(Err(e))) => return Err(e.into()),
                Ok(Ok(Ok(columns))) => columns,
            };
            Ok(SourceData::Rows(RowStream {
                columns,
                batches: Box::pin(Batches(rx)),
                end: PageEnd::Unknown,
            }))
        })
    }
}

/// The receiving end of a reader thread, as a stream of batches.
struct Batches(mpsc::Receiver<Result<RowBatch, BodyError>>);

impl futures_core::Stream for Batches {
    type Item = Result<RowBatch, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// How a column's values become cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Int,
    UInt32,
    UInt64,
    Float,
    Double,
    /// A decimal of this scale.
    Decimal(i32),
    Date,
    Timestamp(TimeUnit),
    /// A legacy `INT96` timestamp (nanoseconds).
    Int96,
}

/// A column's annotation: its logical type, or for older files its converted type.
#[derive(Debug)]
enum Annotation {
    None,
    Text,
    Int { signed: bool },
    Decimal(i32),
    Date,
    Timestamp(TimeUnit),
    Other(String),
}

fn annotation(d: &ColumnDescriptor) -> Annotation {
    match d.logical_type_ref() {
        Some(LogicalType::String | LogicalType::Enum | LogicalType::Json) => Annotation::Text,
        Some(LogicalType::Integer(t)) => Annotation::Int { signed: t.is_signed },
        Some(LogicalType::Decimal(t)) => Annotation::Decimal(t.scale),
        Some(LogicalType::Date) => Annotation::Date,
        Some(LogicalType::Timestamp(t)) => Annotation::Timestamp(t.unit),
        Some(other) => Annotation::Other(format!("{other:?}")),
        None => match d.converted_type() {
            ConvertedType::NONE => Annotation::None,
            ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON => Annotation::Text,
            ConvertedType::INT_8 | ConvertedType::INT_16 | ConvertedType::INT_32 | ConvertedType::INT_64 => {
                Annotation::Int { signed: true }
            }
            ConvertedType::UINT_8
            | ConvertedType::UINT_16
            | ConvertedType::UINT_32
            | ConvertedType::UINT_64 => Annotation::Int { signed: false },
            ConvertedType::DECIMAL => Annotation::Decimal(d.type_scale()),
            ConvertedType::DATE => Annotation::Date,
            ConvertedType::TIMESTAMP_MILLIS => Annotation::Timestamp(TimeUnit::MILLIS),
            ConvertedType::TIMESTAMP_MICROS => Annotation::Timestamp(TimeUnit::MICROS),
            other => Annotation::Other(other.to_string()),
        },
    }
}

/// How a column's values are served, or what it is when they cannot be.
fn kind(d: &ColumnDescriptor) -> Result<Kind, String> {
    use Annotation as A;
    use PhysicalType as P;
    let physical = d.physical_type();
    Ok(match (physical, annotation(d)) {
        (P::BOOLEAN, A::None) => Kind::Bool,
        (P::INT32 | P::INT64, A::None | A::Int { signed: true }) => Kind::Int,
        (P::INT32, A::Int { signed: false }) => Kind::UInt32,
        (P::INT64, A::Int { signed: false }) => Kind::UInt64,
        (P::INT32 | P::INT64 | P::BYTE_ARRAY | P::FIXED_LEN_BYTE_ARRAY, A::Decimal(scale)) => {
            Kind::Decimal(scale)
        }
        (P::INT32, A::Date) => Kind::Date,
        (P::INT64, A::Timestamp(unit)) => Kind::Timestamp(unit),
        (P::INT96, A::None) => Kind::Int96,
        (P::FLOAT, A::None) => Kind::Float,
        (P::DOUBLE, A::None) => Kind::Double,
        (P::BYTE_ARRAY, A::Text) => Kind::Text,
        (P::BYTE_ARRAY | P::FIXED_LEN_BYTE_ARRAY, A::None) => return Err("binary".into()),
        (p, A::Other(a)) => return Err(format!("{p} ({a})")),
        (p, a) => return Err(format!("{p} ({a:?})")),
    })
}

/// A column read: its leaf in the file's schema and how its values are served.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    leaf: usize,
    physical: PhysicalType,
    kind: Kind,
    /// 0 for a required column, 1 for an optional one.
    max_def: i16,
}

/// The file's columns for `wanted` (every servable top-level column when `None`), each
/// `None` where the file lacks it.
fn project(
    path: &Path,
    reader: &SerializedFileReader<std::fs::File>,
    wanted: Option<&[String]>,
) -> Result<Vec<(String, Option<Column>)>, ParquetSourceError> {
    let schema = reader.metadata().file_metadata().schema_descr();
    let flat = |leaf: usize| -> Option<&ColumnDescriptor> {
        let d = schema.columns().get(leaf)?;
        (d.path().parts().len() == 1 && d.max_rep_level() == 0).then_some(&**d)
    };
    let column = |name: &str, leaf: usize, d: &ColumnDescriptor| -> Result<Column, ParquetSourceError> {
        let kind = kind(d).map_err(|what| ParquetSourceError::Unsupported {
            path: path.to_owned(),
            column: name.to_owned(),
            what,
        })?;
        Ok(Column {
            name: name.to_owned(),
            leaf,
            physical: d.physical_type(),
            kind,
            max_def: d.max_def_level(),
        })
    };
    let Some(wanted) = wanted else {
        // Every top-level column that is flat and of a servable type.
        return Ok((0..schema.num_columns())
            .filter_map(|leaf| {
                let d = flat(leaf)?;
                let c = column(d.name(), leaf, d).ok()?;
                Some((c.name.clone(), Some(c)))
            })
            .collect());
    };
    let fields = schema.root_schema().get_fields();
    wanted
        .iter()
        .map(|name| {
            let Some(top) = fields.iter().position(|f| f.name() == name) else {
                return Ok((name.clone(), None));
            };
            let mut leaves = (0..schema.num_columns()).filter(|&l| schema.get_column_root_idx(l) == top);
            let (Some(leaf), None) = (leaves.next(), leaves.next()) else {
                return Err(ParquetSourceError::Nested {
                    path: path.to_owned(),
                    column: name.clone(),
                });
            };
            let Some(d) = flat(leaf) else {
                return Err(ParquetSourceError::Nested {
                    path: path.to_owned(),
                    column: name.clone(),
                });
            };
            Ok((name.clone(), Some(column(name, leaf, d)?)))
        })
        .collect()
}

/// Why the reading stopped early.
enum Stop {
    /// The consumer went away.
    Gone,
    /// A file failed.
    Failed(ParquetSourceError),
}

impl From<ParquetSourceError> for Stop {
    fn from(e: ParquetSourceError) -> Self {
        Self::Failed(e)
    }
}

/// One fetch read on a blocking thread.
struct Job {
    path: PathBuf,
    wanted: Option<Vec<String>>,
}

type Started = oneshot::Sender<Result<Arc<[String]>, ParquetSourceError>>;
type Rows = mpsc::Sender<Result<RowBatch, BodyError>>;

impl Job {
    fn run(self, started: Started, tx: Rows) {
        let guard = tx.clone();
        // A panic in the reader (a corrupt file) must end the body with an error, never look
        // like its end.
        let run = std::panic::AssertUnwindSafe(|| self.serve(started, tx));
        if std::panic::catch_unwind(run).is_err() {
            let _ = guard.blocking_send(Err(BodyError("parquet: the reader failed".into())));
        }
    }

    fn serve(&self, started: Started, tx: Rows) {
        let first = list(&self.path).and_then(|files| {
            let mut files = files.into_iter();
            let Some(path) = files.next() else {
                return Ok((files, None));
            };
            let reader = open(&path)?;
            let columns = project(&path, &reader, self.wanted.as_deref())?;
            Ok((files, Some((path, reader, columns))))
        });
        let (files, first) = match first {
            Ok(f) => f,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let Some((first_path, reader, shape)) = first else {
            // An empty folder: no columns, no rows.
            let _ = started.send(Ok(Arc::from(Vec::new())));
            return;
        };
        let columns: Vec<Column> = shape.iter().filter_map(|(_, c)| c.clone()).collect();
        let names: Arc<[String]> = columns.iter().map(|c| c.name.clone()).collect();
        if started.send(Ok(names)).is_err() {
            return;
        }
        // With a plan, the columns are the plan's; without, the first file's.
        let wanted: Vec<String> = shape.iter().map(|(n, _)| n.clone()).collect();
        let mut batch = RowBatch::new(columns.len());
        let read = || -> Result<(), Stop> {
            read_file(&first_path, &reader, &columns, &mut batch, &tx)?;
            drop(reader);
            for path in files {
                let reader = open(&path)?;
                let these = project(&path, &reader, Some(&wanted))?;
                // Each column read has the first file's type, or both files lack it.
                let sig = |c: &Option<Column>| c.as_ref().map(|c| (c.physical, c.kind));
                if let Some(((column, _), _)) =
                    these.iter().zip(&shape).find(|((_, a), (_, b))| sig(a) != sig(b))
                {
                    return Err(Stop::Failed(ParquetSourceError::Differs {
                        column: column.clone(),
                        path,
                        first: first_path.clone(),
                    }));
                }
                let these: Vec<Column> = these.into_iter().filter_map(|(_, c)| c).collect();
                read_file(&path, &reader, &these, &mut batch, &tx)?;
            }
            Ok(())
        };
        match read() {
            Ok(()) => {
                if !batch.is_empty() {
                    let _ = tx.blocking_send(Ok(batch));
                }
            }
            Err(Stop::Gone) => {}
            Err(Stop::Failed(e)) => {
                // The rows read before the failure, then the error that ends the body.
                if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
                    return;
                }
                let _ = tx.blocking_send(Err(BodyError(format!("parquet: {e}"))));
            }
        }
    }
}

/// Reads a file's row groups into batches, sending each full batch.
fn read_file(
    path: &Path,
    reader: &SerializedFileReader<std::fs::File>,
    columns: &[Column],
    batch: &mut RowBatch,
    tx: &Rows,
) -> Result<(), Stop> {
    let failed = |source| ParquetSourceError::Read {
        path: path.to_owned(),
        source,
    };
    if columns.is_empty() {
        return Ok(());
    }
    for group in 0..reader.num_row_groups() {
        let group = reader.get_row_group(group).map_err(failed)?;
        // Only the projected columns' chunks are opened: no other page is read.
        let mut readers = columns
            .iter()
            .map(|c| {
                Ok(Reader {
                    values: Values::new(group.get_column_reader(c.leaf)?),
                    def: Vec::new(),
                    next: 0,
                })
            })
            .collect::<Result<Vec<_>, ::parquet::errors::ParquetError>>()
            .map_err(failed)?;
        loop {
            let mut rows = None;
            for (r, c) in readers.iter_mut().zip(columns) {
                let n = r.read(BATCH_ROWS, c.max_def).map_err(failed)?;
                if rows.is_some_and(|rows| rows != n) {
                    return Err(Stop::Failed(ParquetSourceError::Ragged(path.to_owned())));
                }
                rows = Some(n);
            }
            let rows = rows.unwrap_or(0);
            if rows == 0 {
                break;
            }
            for row in 0..rows {
                for (r, c) in readers.iter_mut().zip(columns) {
                    if let Err(what) = r.push(row, c, batch) {
                        // The batch ends inside a row: none of it is sent.
                        batch.clear();
                        return Err(Stop::Failed(ParquetSourceError::Value {
                            path: path.to_owned(),
                            column: c.name.clone(),
                            what,
                        }));
                    }
                }
                if batch.rows() >= BATCH_ROWS || batch.bytes() >= BATCH_BYTES {
                    let full = std::mem::replace(batch, RowBatch::new(columns.len()));
                    if tx.blocking_send(Ok(full)).is_err() {
                        return Err(Stop::Gone);
                    }
                }
            }
        }
    }
    Ok(())
}

/// A column chunk's reader with the values and definition levels of its last read.
struct Reader {
    values: Values,
    def: Vec<i16>,
    /// The next value of `values` (nulls have none).
    next: usize,
}

/// A typed column reader and its value buffer.
enum Values {
    Bool(ColumnReaderImpl<BoolType>, Vec<bool>),
    Int32(ColumnReaderImpl<Int32Type>, Vec<i32>),
    Int64(ColumnReaderImpl<Int64Type>, Vec<i64>),
    Int96(ColumnReaderImpl<Int96Type>, Vec<Int96>),
    Float(ColumnReaderImpl<FloatType>, Vec<f32>),
    Double(ColumnReaderImpl<DoubleType>, Vec<f64>),
    Bytes(ColumnReaderImpl<ByteArrayType>, Vec<ByteArray>),
    Fixed(ColumnReaderImpl<FixedLenByteArrayType>, Vec<FixedLenByteArray>),
}

impl Values {
    fn new(r: ColumnReader) -> Self {
        match r {
            ColumnReader::BoolColumnReader(r) => Self::Bool(r, Vec::new()),
            ColumnReader::Int32ColumnReader(r) => Self::Int32(r, Vec::new()),
            ColumnReader::Int64ColumnReader(r) => Self::Int64(r, Vec::new()),
            ColumnReader::Int96ColumnReader(r) => Self::Int96(r, Vec::new()),
            ColumnReader::FloatColumnReader(r) => Self::Float(r, Vec::new()),
            ColumnReader::DoubleColumnReader(r) => Self::Double(r, Vec::new()),
            ColumnReader::ByteArrayColumnReader(r) => Self::Bytes(r, Vec::new()),
            ColumnReader::FixedLenByteArrayColumnReader(r) => Self::Fixed(r, Vec::new()),
        }
    }
}

/// A value that cannot be served, for [`ParquetSourceError::Value`].
type ValueError = &'static str;

impl Reader {
    /// Reads up to `n` rows; how many were read (0 at the chunk's end).
    fn read(&mut self, n: usize, max_def: i16) -> ::parquet::errors::Result<usize> {
        self.def.clear();
        self.next = 0;
        let def = (max_def > 0).then_some(&mut self.def);
        macro_rules! read {
            ($r:expr, $v:expr) => {{
                $v.clear();
                $r.read_records(n, def, None, $v)?.0
            }};
        }
        Ok(match &mut self.values {
            Values::Bool(r, v) => read!(r, v),
            Values::Int32(r, v) => read!(r, v),
            Values::Int64(r, v) => read!(r, v),
            Values::Int96(r, v) => read!(r, v),
            Values::Float(r, v) => read!(r, v),
            Values::Double(r, v) => read!(r, v),
            Values::Bytes(r, v) => read!(r, v),
            Values::Fixed(r, v) => read!(r, v),
        })
    }

    /// Pushes the cell of row `row` (of the last read) into the batch.
    fn push(&mut self, row: usize, c: &Column, batch: &mut RowBatch) -> Result<(), ValueError> {
        if c.max_def > 0 && self.def.get(row) != Some(&c.max_def) {
            batch.push_null();
            return Ok(());
        }
        let i = self.next;
        self.next += 1;
        let missing = "fewer values than rows";
        match (&self.values, c.kind) {
            (Values::Bool(_, v), Kind::Bool) => batch.push_bool(*v.get(i).ok_or(missing)?),
            (Values::Int32(_, v), Kind::Int) => batch.push_int(i64::from(*v.get(i).ok_or(missing)?)),
            (Values::Int32(_, v), Kind::UInt32) => {
                // An unsigned 32-bit integer is stored in the bits of an INT32.
                let u = u32::from_ne_bytes(v.get(i).ok_or(missing)?.to_ne_bytes());
                batch.push_int(i64::from(u));
            }
            (Values::Int64(_, v), Kind::Int) => batch.push_int(*v.get(i).ok_or(missing)?),
            (Values::Int64(_, v), Kind::UInt64) => {
                let u = u64::from_ne_bytes(v.get(i).ok_or(missing)?.to_ne_bytes());
                batch.push_int(i64::try_from(u).map_err(|_| "an unsigned integer beyond 2^63 - 1")?);
            }
            (Values::Int32(_, v), Kind::Decimal(scale)) => {
                push_decimal(batch, i128::from(*v.get(i).ok_or(missing)?), scale)?;
            }
            (Values::Int64(_, v), Kind::Decimal(scale)) => {
                push_decimal(batch, i128::from(*v.get(i).ok_or(missing)?), scale)?;
            }
            (Values::Bytes(_, v), Kind::Decimal(scale)) => {
                push_decimal(batch, unscaled(v.get(i).ok_or(missing)?.data())?, scale)?;
            }
            (Values::Fixed(_, v), Kind::Decimal(scale)) => {
                push_decimal(batch, unscaled(v.get(i).ok_or(missing)?.data())?, scale)?;
            }
            (Values::Int32(_, v), Kind::Date) => batch.push_text(&date(*v.get(i).ok_or(missing)?)?),
            (Values::Int64(_, v), Kind::Timestamp(unit)) => {
                let t = i128::from(*v.get(i).ok_or(missing)?);
                let nanos = match unit {
                    TimeUnit::MILLIS => t * 1_000_000,
                    TimeUnit::MICROS => t * 1_000,
                    TimeUnit::NANOS => t,
                };
                batch.push_text(&timestamp(nanos)?);
            }
            (Values::Int96(_, v), Kind::Int96) => {
                let d = v.get(i).ok_or(missing)?.data();
                let (Some(lo), Some(hi), Some(day)) = (d.first(), d.get(1), d.get(2)) else {
                    return Err(missing);
                };
                // Nanoseconds of the day, then the Julian day.
                let of_day = i128::from((u64::from(*hi) << 32) | u64::from(*lo));
                let days = i128::from(*day) - i128::from(UNIX_EPOCH_JULIAN_DAY);
                batch.push_text(&timestamp(days * 86_400 * 1_000_000_000 + of_day)?);
            }
            (Values::Float(_, v), Kind::Float) => {
                let f = *v.get(i).ok_or(missing)?;
                if f.is_finite() {
                    // The float's own shortest text, not that of the double it widens to.
                    batch
                        .push_number(ryu::Buffer::new().format_finite(f))
                        .map_err(|_| "a float that is no JSON number")?;
                } else {
                    batch.push_null();
                }
            }
            (Values::Double(_, v), Kind::Double) => batch.push_float(*v.get(i).ok_or(missing)?),
            (Values::Bytes(_, v), Kind::Text) => {
                let text = std::str::from_utf8(v.get(i).ok_or(missing)?.data())
                    .map_err(|_| "text that is not UTF-8")?;
                batch.push_text(text);
            }
            _ => return Err("values of another type than the column's"),
        }
        Ok(())
    }
}

/// The Julian day of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// A decimal's unscaled value from its big-endian two's complement bytes.
fn unscaled(b: &[u8]) -> Result<i128, ValueError> {
    let (&first, _) = b.split_first().ok_or("an empty decimal")?;
    let negative = first & 0x80 != 0;
    let sign = if negative { 0xFF } else { 0x00 };
    let (high, low) = b.split_at(b.len().saturating_sub(16));
    // Bytes beyond 16 may only repeat the sign, which the 16 others must keep.
    let fits = high.iter().all(|&x| x == sign) && low.first().is_some_and(|&x| (x & 0x80 != 0) == negative);
    if !fits {
        return Err("a decimal of more than 38 digits");
    }
    let mut buf = [sign; 16];
    buf[16 - low.len()..].copy_from_slice(low);
    Ok(i128::from_be_bytes(buf))
}

/// Pushes a decimal with exactly its digits: unscaled 1050 of scale 2 is `10.50`.
fn push_decimal(batch: &mut RowBatch, unscaled: i128, scale: i32) -> Result<(), ValueError> {
    batch
        .push_number(&decimal_text(unscaled, scale))
        .map_err(|_| "a decimal that is no JSON number")
}

fn decimal_text(unscaled: i128, scale: i32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + 3);
    if unscaled < 0 {
        out.push('-');
    }
    match usize::try_from(scale) {
        Ok(0) => out.push_str(&digits),
        Ok(scale) => {
            let padded = format!("{digits:0>width$}", width = scale + 1);
            let (int, frac) = padded.split_at(padded.len() - scale);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
        // A negative scale: trailing zeros (none after a zero).
        Err(_) => {
            out.push_str(&digits);
            if unscaled != 0 {
                out.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
            }
        }
    }
    out
}

/// `YYYY-MM-DD` of days since 1970-01-01 (years 0 to 9999).
fn date(days: i32) -> Result<String, ValueError> {
    UNIX_EPOCH_JULIAN_DAY
        .checked_add(days)
        .and_then(|julian| time::Date::from_julian_day(julian).ok())
        .and_then(date_text)
        .ok_or("a date outside the years 0 to 9999")
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` of nanoseconds since 1970-01-01 00:00:00 UTC; nine digits
/// of fraction where the nanoseconds are not whole microseconds.
fn timestamp(nanos: i128) -> Result<String, ValueError> {
    let out_of_range = "a timestamp outside the years 0 to 9999";
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| out_of_range)?;
    let day = date_text(t.date()).ok_or(out_of_range)?;
    let mut out = format!("{day} {:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    let ns = t.nanosecond();
    if ns % 1_000 != 0 {
        out.push_str(&format!(".{ns:09}"));
    } else if ns != 0 {
        out.push_str(&format!(".{:06}", ns / 1_000));
    }
    Ok(out)
}

fn date_text(d: time::Date) -> Option<String> {
    (0..=9999)
        .contains(&d.year())
        .then(|| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use ::parquet::basic::{Compression, GzipLevel, ZstdLevel};
    use ::parquet::data_type::DataType;
    use ::parquet::file::properties::WriterProperties;
    use ::parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
    use ::parquet::schema::parser::parse_message_type;
    use sluice_policy::mask::{MaskRule, PseudonymKey};
    use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
    use sluice_policy::query::ClientQuery;
    use sluice_policy::rowfilter::RowFilter;
    use sluice_policy::stream::{Masker, MaskerLimits, OutputFormat};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh folder under the system's temporary folder, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "sluice-parquet-source-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// One column's values for the writer, `None` for null.
    enum Data {
        Bytes(Vec<Option<Vec<u8>>>),
        Fixed(Vec<Option<Vec<u8>>>),
        I32(Vec<Option<i32>>),
        I64(Vec<Option<i64>>),
        F32(Vec<Option<f32>>),
        F64(Vec<Option<f64>>),
        Bool(Vec<Option<bool>>),
        /// The leaf of a list of strings, null in each of this many rows.
        NullList(usize),
    }

    fn put<T: DataType>(col: &mut SerializedColumnWriter<'_>, values: Vec<Option<T::T>>) {
        let w = col.typed::<T>();
        let max_def = w.get_descriptor().max_def_level();
        let defs: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
        let present: Vec<T::T> = values.into_iter().flatten().collect();
        w.write_batch(&present, (max_def > 0).then_some(&defs[..]), None)
            .unwrap();
    }

    impl Data {
        fn write(&self, col: &mut SerializedColumnWriter<'_>) {
            let bytes = |v: &[Option<Vec<u8>>]| -> Vec<Option<ByteArray>> {
                v.iter().map(|b| b.clone().map(ByteArray::from)).collect()
            };
            match self {
                Self::Bytes(v) => put::<ByteArrayType>(col, bytes(v)),
                Self::Fixed(v) => put::<FixedLenByteArrayType>(
                    col,
                    bytes(v)
                        .into_iter()
                        .map(|b| b.map(FixedLenByteArray::from))
                        .collect(),
                ),
                Self::I32(v) => put::<Int32Type>(col, v.clone()),
                Self::I64(v) => put::<Int64Type>(col, v.clone()),
                Self::F32(v) => put::<FloatType>(col, v.clone()),
                Self::F64(v) => put::<DoubleType>(col, v.clone()),
                Self::Bool(v) => put::<BoolType>(col, v.clone()),
                Self::NullList(n) => {
                    let levels = vec![0; *n];
                    col.typed::<ByteArrayType>()
                        .write_batch(&[], Some(&levels), Some(&levels))
                        .unwrap();
                }
            }
        }
    }

    /// Writes a file of `schema`, one row group per item of `groups` (its columns in schema
    /// order).
    fn write(path: &Path, schema: &str, compression: Compression, groups: &[Vec<Data>]) {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(WriterProperties::builder().set_compression(compression).build());
        let file = std::fs::File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
        for group in groups {
            let mut g = w.next_row_group().unwrap();
            for data in group {
                let mut col = g.next_column().unwrap().unwrap();
                data.write(&mut col);
                col.close().unwrap();
            }
            assert!(g.next_column().unwrap().is_none(), "one Data per column");
            g.close().unwrap();
        }
        w.close().unwrap();
    }

    fn text(v: &[&str]) -> Data {
        Data::Bytes(v.iter().map(|s| Some(s.as_bytes().to_vec())).collect())
    }

    fn source(path: &Path) -> ParquetSource {
        ParquetSource::new(ParquetSourceConfig {
            path: path.to_owned(),
            read_timeout_ms: 5_000,
        })
    }

    fn plan(fields: &[&str]) -> FieldPlan {
        FieldPlan {
            record_key: None,
            marks: None,
            fields: fields
                .iter()
                .map(|name| PlannedField {
                    name: (*name).into(),
                    action: FieldAction::Emit { scan: false },
                })
                .collect(),
            row_filter: None,
            key: PseudonymKey::derive(b"master", "acme", "register"),
        }
    }

    /// What a page read: the masker's NDJSON output, the batches read and the error that
    /// ended the rows, if any.
    struct Page {
        out: String,
        columns: Vec<String>,
        batches: usize,
        error: Option<String>,
    }

    /// Reads a fetch through the typed masker, stopping once it is full, as the gateway does.
    async fn page(source: &ParquetSource, fetch: &Fetch<'_>, max_records: Option<u64>) -> Page {
        let plan = Arc::new(fetch.plan.cloned().unwrap());
        let SourceData::Rows(mut rows) = source.fetch(fetch).await.unwrap() else {
            panic!("rows expected")
        };
        let limits = MaskerLimits {
            max_records,
            ..MaskerLimits::default()
        };
        let query = fetch.query.cloned().map(Arc::new);
        let mut m = Masker::typed(plan, query, &rows.columns, OutputFormat::Ndjson, limits);
        let mut out = Vec::new();
        let (mut batches, mut error) = (0, None);
        while !m.is_full() {
            match std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx)).await {
                None => break,
                Some(Ok(b)) => {
                    m.push_rows(&b, &mut out).unwrap();
                    batches += 1;
                }
                Some(Err(e)) => {
                    error = Some(e.0);
                    break;
                }
            }
        }
        m.finish(&mut out).unwrap();
        Page {
            out: String::from_utf8(out).unwrap(),
            columns: rows.columns.to_vec(),
            batches,
            error,
        }
    }

    fn fetch_of(plan: &FieldPlan) -> Fetch<'_> {
        Fetch {
            limit: 100,
            plan: Some(plan),
            ..Fetch::default()
        }
    }

    const TYPED: &str = "message register {
        REQUIRED BYTE_ARRAY id (STRING);
        OPTIONAL INT64 count;
        OPTIONAL DOUBLE rate;
        OPTIONAL BOOLEAN active;
        OPTIONAL INT64 amount (DECIMAL(10,2));
        OPTIONAL INT32 day (DATE);
        OPTIONAL INT64 at (TIMESTAMP(MICROS,true));
        OPTIONAL INT64 logged (TIMESTAMP(MILLIS,true));
        OPTIONAL FIXED_LEN_BYTE_ARRAY (16) big (DECIMAL(38,4));
        OPTIONAL FLOAT ratio;
        OPTIONAL INT32 small (INT_16);
        OPTIONAL INT64 huge (UINT_64);
    }";

    fn typed_file(path: &Path) {
        let fixed = |v: i128| Some(v.to_be_bytes().to_vec());
        write(
            path,
            TYPED,
            Compression::SNAPPY,
            &[vec![
                text(&["a", "b \"q\"", "c"]),
                Data::I64(vec![Some(42), None, Some(-7)]),
                Data::F64(vec![Some(0.1), None, Some(1400.0)]),
                Data::Bool(vec![Some(true), None, Some(false)]),
                Data::I64(vec![Some(1050), None, Some(-5)]),
                Data::I32(vec![Some(20_270), None, Some(0)]),
                Data::I64(vec![
                    Some(1_751_358_600_000_000),
                    None,
                    Some(1_751_327_999_123_456),
                ]),
                Data::I64(vec![Some(1_751_358_600_250), None, Some(-1)]),
                Data::Fixed(vec![fixed(123_456_789), None, fixed(-1)]),
                Data::F32(vec![Some(0.1), None, Some(f32::NAN)]),
                Data::I32(vec![Some(-300), None, Some(7)]),
                Data::I64(vec![Some(5), None, Some(i64::MAX)]),
            ]],
        );
    }

    #[tokio::test]
    async fn each_parquet_type_reaches_the_masker_as_its_json_value() {
        let dir = TempDir::new();
        let file = dir.0.join("register.parquet");
        typed_file(&file);
        let plan = plan(&[
            "id", "count", "rate", "active", "amount", "day", "at", "logged", "big", "ratio", "small", "huge",
        ]);
        let page = page(&source(&file), &fetch_of(&plan), None).await;
        assert_eq!(page.error, None);
        let want = [
            r#"{"id":"a","count":42,"rate":0.1,"active":true,"amount":10.50,"day":"2025-07-01","at":"2025-07-01 08:30:00","logged":"2025-07-01 08:30:00.250000","big":12345.6789,"ratio":0.1,"small":-300,"huge":5}"#,
            r#"{"id":"b \"q\"","count":null,"rate":null,"active":null,"amount":null,"day":null,"at":null,"logged":null,"big":null,"ratio":null,"small":null,"huge":null}"#,
            r#"{"id":"c","count":-7,"rate":1400.0,"active":false,"amount":-0.05,"day":"1970-01-01","at":"2025-06-30 23:59:59.123456","logged":"1969-12-31 23:59:59.999000","big":-0.0001,"ratio":null,"small":7,"huge":9223372036854775807}"#,
        ];
        assert_eq!(page.out, want.map(|l| format!("{l}\n")).concat());
        assert_eq!(source(&file).check().await.unwrap(), "12 columns read, 3 row");
    }

    #[test]
    fn decimals_keep_their_digits_and_values_out_of_range_fail() {
        assert_eq!(decimal_text(1050, 2), "10.50");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(0, 2), "0.00");
        assert_eq!(decimal_text(12, 0), "12");
        assert_eq!(decimal_text(12, -2), "1200");
        assert_eq!(decimal_text(0, -2), "0");
        assert_eq!(decimal_text(i128::MIN, 0), i128::MIN.to_string());
        assert_eq!(unscaled(&[0x04, 0x1A]), Ok(1050));
        assert_eq!(unscaled(&[0xFF, 0xFB]), Ok(-5));
        let mut wide = vec![0xFF; 4];
        wide.extend_from_slice(&(-7i128).to_be_bytes());
        assert_eq!(unscaled(&wide), Ok(-7));
        wide[0] = 0x00;
        assert!(unscaled(&wide).is_err(), "more than 16 bytes of digits");
        assert!(unscaled(&[]).is_err());
        assert_eq!(date(-1).unwrap(), "1969-12-31");
        assert!(date(i32::MAX).is_err());
        assert_eq!(timestamp(1_500).unwrap(), "1970-01-01 00:00:00.000001500");
        assert!(timestamp(i128::from(i64::MAX) * 1_000).is_err());
    }

    /// A register of six columns: two planned; an unplanned string column of bytes that are
    /// not UTF-8, a nested list and a binary column, each of which fails a page that reads it.
    const SIX: &str = "message register {
        REQUIRED BYTE_ARRAY id (STRING);
        OPTIONAL BYTE_ARRAY district (STRING);
        OPTIONAL DOUBLE reading;
        OPTIONAL BYTE_ARRAY secret (STRING);
        OPTIONAL GROUP tags (LIST) {
            REPEATED GROUP list {
                OPTIONAL BYTE_ARRAY element (STRING);
            }
        }
        OPTIONAL BYTE_ARRAY photo;
    }";

    fn six_file(path: &Path) {
        write(
            path,
            SIX,
            Compression::UNCOMPRESSED,
            &[vec![
                text(&["m1", "m2", "m3"]),
                text(&["Huangpu", "Xuhui", "Huangpu"]),
                Data::F64(vec![Some(1.5), Some(2.0), None]),
                Data::Bytes(vec![Some(vec![0xFF, 0xFE, b'x']); 3]),
                Data::NullList(3),
                Data::Bytes(vec![Some(vec![0, 1, 2]); 3]),
            ]],
        );
    }

    #[tokio::test]
    async fn only_the_columns_the_plan_and_filters_name_are_decoded() {
        let dir = TempDir::new();
        let file = dir.0.join("register.parquet");
        six_file(&file);
        let s = source(&file);

        // The plan names 2 of 6 columns (and one the file lacks): the others, including one
        // that would fail if it were decoded, are never read.
        let two = plan(&["id", "reading", "nope"]);
        let page1 = page(&s, &fetch_of(&two), None).await;
        assert_eq!(page1.error, None);
        assert_eq!(page1.columns, ["id", "reading"]);
        assert_eq!(
            page1.out,
            "{\"id\":\"m1\",\"reading\":1.5}\n{\"id\":\"m2\",\"reading\":2.0}\n{\"id\":\"m3\",\"reading\":null}\n"
        );

        // A filter's columns are read too: the licence's row filter and the client's filters.
        let rf = RowFilter::parse("district = 'Huangpu'").unwrap();
        let q = ClientQuery::from_pairs([("reading", "gt.1")]).unwrap();
        let fetch = Fetch {
            row_filter: Some(&rf),
            query: Some(&q),
            ..fetch_of(&two)
        };
        let mut filtered = two.clone();
        filtered.row_filter = Some(rf.clone());
        let fetch = Fetch {
            plan: Some(&filtered),
            ..fetch
        };
        let page2 = page(&s, &fetch, None).await;
        assert_eq!(page2.columns, ["id", "reading", "district"]);
        assert_eq!(page2.out, "{\"id\":\"m1\",\"reading\":1.5}\n");

        // Naming the column that is not UTF-8 decodes it, and fails closed without its bytes.
        let secret = plan(&["id", "secret"]);
        let page3 = page(&s, &fetch_of(&secret), None).await;
        let e = page3.error.expect("not UTF-8");
        assert!(
            e.contains("\"secret\"") && e.contains("UTF-8") && e.contains("register.parquet"),
            "{e}"
        );
        assert!(page3.out.is_empty(), "{}", page3.out);

        // Nested and binary columns are refused by name.
        for (name, what) in [("tags", "nested"), ("photo", "binary")] {
            let p = plan(&["id", name]);
            let Err(e) = s.fetch(&fetch_of(&p)).await else {
                panic!("{name} is read")
            };
            let e = e.to_string();
            assert!(e.contains(&format!("{name:?}")) && e.contains(what), "{e}");
        }

        // A check (no plan) reads every column that can be served: the one that is not UTF-8
        // too (the nested and binary ones are left out).
        let e = s.check().await.unwrap_err();
        assert!(e.contains("\"secret\"") && e.contains("UTF-8"), "{e}");
    }

    const METERS: &str = "message meters {
        REQUIRED BYTE_ARRAY id (STRING);
        OPTIONAL DOUBLE reading;
        OPTIONAL BYTE_ARRAY note (STRING);
    }";

    fn meters(from: u32, to: u32) -> Vec<Data> {
        let ids: Vec<String> = (from..to).map(|i| format!("M{i:05}")).collect();
        vec![
            Data::Bytes(ids.iter().map(|s| Some(s.clone().into_bytes())).collect()),
            Data::F64((from..to).map(|i| Some(f64::from(i) / 4.0)).collect()),
            Data::Bytes(
                (from..to)
                    .map(|i| Some(format!("note {i}").into_bytes()))
                    .collect(),
            ),
        ]
    }

    #[tokio::test]
    async fn a_folder_is_one_dataset_in_name_order_and_a_file_that_differs_fails_by_name() {
        let dir = TempDir::new();
        // Written out of order, each with another codec; other files are left out.
        write(
            &dir.0.join("2025-03.parquet"),
            METERS,
            Compression::ZSTD(ZstdLevel::default()),
            &[meters(4, 6)],
        );
        write(
            &dir.0.join("2025-01.parquet"),
            METERS,
            Compression::SNAPPY,
            &[meters(0, 2)],
        );
        write(
            &dir.0.join("2025-02.PARQUET"),
            METERS,
            Compression::GZIP(GzipLevel::default()),
            &[meters(2, 4)],
        );
        std::fs::write(dir.0.join("readme.txt"), b"not parquet").unwrap();
        std::fs::write(dir.0.join(".2025-04.parquet"), b"partial upload").unwrap();
        let s = source(&dir.0);
        let p = plan(&["id", "reading"]);
        let all = page(&s, &fetch_of(&p), None).await;
        assert_eq!(all.error, None);
        let ids: Vec<String> = all
            .out
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, ["M00000", "M00001", "M00002", "M00003", "M00004", "M00005"]);

        // A file whose unread column differs is fine; one whose read column differs is not.
        let other = METERS.replace("OPTIONAL BYTE_ARRAY note (STRING)", "OPTIONAL INT64 note");
        let mut notes = meters(6, 7);
        notes[2] = Data::I64(vec![Some(1)]);
        write(
            &dir.0.join("2025-04.parquet"),
            &other,
            Compression::SNAPPY,
            &[notes],
        );
        let mut readings = meters(7, 8);
        readings[1] = Data::F32(vec![Some(1.0)]);
        let float = METERS.replace("DOUBLE reading", "FLOAT reading");
        write(
            &dir.0.join("2025-05.parquet"),
            &float,
            Compression::SNAPPY,
            &[readings],
        );
        write(
            &dir.0.join("2025-06.parquet"),
            METERS,
            Compression::SNAPPY,
            &[meters(8, 9)],
        );
        let failed = page(&s, &fetch_of(&p), None).await;
        let e = failed.error.expect("a file differs");
        assert!(
            e.contains("2025-05.parquet") && e.contains("\"reading\"") && e.contains("2025-01.parquet"),
            "{e}"
        );
        assert_eq!(
            failed.out.lines().count(),
            7,
            "the files before it: {}",
            failed.out
        );
        assert!(!failed.out.contains("M00008"), "nothing after it");

        // The first file's schema rules: a later file that lacks a column read fails too.
        let dir = TempDir::new();
        write(
            &dir.0.join("a.parquet"),
            METERS,
            Compression::SNAPPY,
            &[meters(0, 1)],
        );
        let no_note = "message meters { REQUIRED BYTE_ARRAY id (STRING); OPTIONAL DOUBLE reading; }";
        let mut two = meters(1, 2);
        two.truncate(2);
        write(&dir.0.join("b.parquet"), no_note, Compression::SNAPPY, &[two]);
        let e = page(&source(&dir.0), &fetch_of(&plan(&["id", "note"])), None)
            .await
            .error
            .expect("b lacks note");
        assert!(e.contains("b.parquet") && e.contains("\"note\""), "{e}");

        // An empty folder is an empty dataset.
        let dir = TempDir::new();
        let empty = page(&source(&dir.0), &fetch_of(&p), None).await;
        assert_eq!((empty.out.as_str(), empty.error), ("", None));
    }

    #[tokio::test]
    async fn rows_arrive_in_batches_and_a_full_page_stops_the_reading() {
        let dir = TempDir::new();
        let file = dir.0.join("meters.parquet");
        // Two row groups.
        write(
            &file,
            METERS,
            Compression::SNAPPY,
            &[meters(0, 3_000), meters(3_000, 5_000)],
        );
        let s = source(&file);
        let p = plan(&["id", "reading"]);
        let all = page(&s, &fetch_of(&p), None).await;
        assert_eq!(all.error, None);
        assert_eq!(all.out.lines().count(), 5_000);
        assert!(all.batches >= 5_000 / BATCH_ROWS, "{} batches", all.batches);
        let last = all.out.lines().last().unwrap();
        assert_eq!(last, "{\"id\":\"M04999\",\"reading\":1249.75}");

        let first = page(&s, &fetch_of(&p), Some(600)).await;
        assert_eq!(first.out.lines().count(), 600);
        assert_eq!(first.batches, 2, "the masker was full after two batches");

        // The masker skips earlier pages' records itself (Paging::Stream).
        assert_eq!(s.paging(), Paging::Stream);
    }

    #[tokio::test]
    async fn a_reader_left_behind_stops() {
        let dir = TempDir::new();
        let file = dir.0.join("meters.parquet");
        write(&file, METERS, Compression::SNAPPY, &[meters(0, 5_000)]);
        let (tx, mut rx) = mpsc::channel(2);
        let (started_tx, started) = oneshot::channel();
        let job = Job {
            path: file,
            wanted: Some(vec!["id".into()]),
        };
        let thread = std::thread::spawn(move || job.run(started_tx, tx));
        assert_eq!(&*started.await.unwrap().unwrap(), ["id".to_owned()]);
        let first = rx.recv().await.unwrap().unwrap();
        assert_eq!(first.rows(), BATCH_ROWS);
        // The channel holds two batches: the reader waits for the consumer…
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!thread.is_finished(), "the reader waits");
        // …and stops when it goes away.
        drop(rx);
        let waited = std::time::Instant::now();
        while !thread.is_finished() {
            assert!(waited.elapsed() < Duration::from_secs(5), "the reader stops");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn validate_names_a_missing_or_unreadable_path() {
        let dir = TempDir::new();
        let config = |path: PathBuf| ParquetSourceConfig {
            path,
            read_timeout_ms: 1,
        };
        let problems = config(dir.0.join("missing.parquet")).validate();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "path");
        assert!(problems[0].1.contains("missing.parquet"), "{problems:?}");

        std::fs::write(dir.0.join("broken.parquet"), b"PAR1 not really").unwrap();
        let problems = config(dir.0.clone()).validate();
        assert!(
            problems.len() == 1 && problems[0].1.contains("broken.parquet"),
            "{problems:?}"
        );

        let empty = ParquetSourceConfig {
            path: PathBuf::new(),
            read_timeout_ms: 0,
        };
        let fields: Vec<String> = empty.validate().into_iter().map(|p| p.0).collect();
        assert_eq!(fields, ["read_timeout_ms", "path"]);

        std::fs::remove_file(dir.0.join("broken.parquet")).unwrap();
        typed_file(&dir.0.join("a.parquet"));
        assert!(config(dir.0.clone()).validate().is_empty());
        assert!(config(dir.0.join("a.parquet")).validate().is_empty());
    }

    #[test]
    fn the_kind_is_parquet_and_paths_resolve_from_the_config_folder() {
        let mut c: crate::SourceConfig =
            toml::from_str("kind = \"parquet\"\npath = \"open-data/permits\"\n").unwrap();
        assert_eq!(c.kind(), "parquet");
        c.resolve_paths(Path::new("/etc/sluice"));
        let crate::SourceConfig::Parquet(p) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(p.path, Path::new("/etc/sluice/open-data/permits"));
        assert_eq!(p.read_timeout_ms, 10_000);
        assert!(
            toml::from_str::<crate::SourceConfig>("kind = \"parquet\"\npath = \"a\"\ntable = 1\n").is_err()
        );
    }

    #[test]
    fn masked_fields_are_read_like_any_other() {
        // A plan's masked field is a planned column: read (and masked by the gateway).
        let mut p = plan(&["id"]);
        p.fields.push(PlannedField {
            name: "owner".into(),
            action: FieldAction::Mask(MaskRule::Pseudonym),
        });
        assert_eq!(
            wanted(&fetch_of(&p)),
            Some(vec!["id".to_owned(), "owner".to_owned()])
        );
        assert_eq!(wanted(&Fetch::default()), None);
    }
}
