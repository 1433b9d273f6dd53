//! File sources: a CSV or NDJSON file an agency exports, or a folder of them, streamed as one
//! document (`kind = "csv"` or `kind = "ndjson"`, `path = "data/register.csv"`).
//!
//! A folder's files (`*.csv`, or `*.ndjson` and `*.jsonl`, in any case; names starting with
//! `.` or not UTF-8 are left out, and so are subfolders) are read in byte order of name, and
//! listed again on every fetch, so a new export is served without a reload. Each file is opened
//! when the previous one ends and read in chunks of up to [`CHUNK_BYTES`] only when the body is
//! polled, so a client that reads slowly, or a page that is full, stops the reading; no file is
//! held in memory.
//!
//! The files of a folder make one document:
//!
//! - CSV: every file must start with the first file's header row (compared byte for byte,
//!   without a leading byte-order mark and the line end); the repeated header rows are skipped.
//!   A file whose header differs, that has no header row, or that ends inside a quoted cell
//!   ends the body with an error naming it, so the masker never reads rows under the wrong
//!   header. A folder without a CSV file fails the fetch (a CSV document needs its header).
//! - NDJSON: an empty folder is an empty document.
//! - Both: a file that does not end with a line break is followed by one when another file
//!   follows, so its last record never runs into the next file's first.
//!
//! A file has no server side: the fetch's `offset`, `limit`, parameters and filters are not
//! applied here. Every fetch streams from the first record; the gateway's masker applies the
//! row filter and the licensee's filters to every record and stops reading once the page is
//! full.

use crate::source::{BodyError, BoxFuture, Connector, Fetch, FetchError, Paging, SourceBody, SourceData};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::{Deserialize, Serialize};
use sluice_policy::stream::InputFormat;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Largest read from a file: a body frame holds one (a CSV file's first frame, its whole
/// header row and what came with it).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Longest CSV header row accepted, in bytes (the masker's default record bound).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// The UTF-8 byte-order mark, ignored where a CSV file starts.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file source: `[sources.<dataset>] kind = "csv"` (or `"ndjson"`) and the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// A file, or a folder of files of the source's kind (relative paths from the config
    /// file's folder).
    pub path: PathBuf,
    /// Longest wait for the folder's listing, for opening a file and for each chunk, ms.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
}

fn default_read_timeout() -> u64 {
    10_000
}

/// The format of a file source's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV with a header row.
    Csv,
    /// Newline-delimited JSON.
    Ndjson,
}

impl FileFormat {
    /// The policy crate's input format.
    pub fn input_format(self) -> InputFormat {
        match self {
            Self::Csv => InputFormat::Csv,
            Self::Ndjson => InputFormat::Ndjson,
        }
    }

    /// The files of this format a folder contributes, for messages.
    fn pattern(self) -> &'static str {
        match self {
            Self::Csv => "*.csv",
            Self::Ndjson => "*.ndjson or *.jsonl",
        }
    }

    /// Whether a folder entry of this name is one of the source's files.
    fn takes(self, name: &OsStr) -> bool {
        let Some(name) = name.to_str().filter(|n| !n.starts_with('.')) else {
            return false;
        };
        let ext = |e: &str| {
            name.len() > e.len()
                && name.is_char_boundary(name.len() - e.len())
                && name[name.len() - e.len()..].eq_ignore_ascii_case(e)
        };
        match self {
            Self::Csv => ext(".csv"),
            Self::Ndjson => ext(".ndjson") || ext(".jsonl"),
        }
    }
}

/// Why a file source failed; becomes a [`FetchError`] before the body and a [`BodyError`] in it.
#[derive(Debug, thiserror::Error)]
enum FileError {
    /// Reading the folder or a file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The path is neither a file nor a folder.
    #[error("{}: neither a file nor a folder", .0.display())]
    NotAFile(PathBuf),
    /// A CSV folder holds no CSV file, so there is no header.
    #[error("{}: the folder holds no {pattern} file", path.display())]
    NoFiles { path: PathBuf, pattern: &'static str },
    /// A CSV file has no header row (it is empty or starts with a blank line).
    #[error("{}: no header row", .0.display())]
    NoHeader(PathBuf),
    /// A CSV file's header row is longer than [`MAX_HEADER_BYTES`].
    #[error("{}: header row longer than {MAX_HEADER_BYTES} bytes", .0.display())]
    HeaderTooLong(PathBuf),
    /// A CSV file's header row is not the first file's.
    #[error("{}: header row differs from that of {}", path.display(), first.display())]
    HeaderDiffers { path: PathBuf, first: PathBuf },
    /// A CSV file ends inside a quoted cell.
    #[error("{}: ends inside a quoted cell", .0.display())]
    OpenQuote(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The source's files: the file itself, or the folder's files of `format` in byte order of name.
fn list(path: &Path, format: FileFormat) -> Result<Vec<PathBuf>, FileError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    if !meta.is_dir() {
        return Err(FileError::NotAFile(path.to_owned()));
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_error(path))? {
        let entry = entry.map_err(io_error(path))?;
        let file = entry.path();
        // `fs::metadata` follows a symbolic link to the file it names.
        if format.takes(&entry.file_name()) && std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
            files.push(file);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

impl FileSourceConfig {
    /// Problems with the config, as (relative path, message): the path must name a readable
    /// file, or a folder whose files of `format` are readable.
    pub fn validate(&self, format: FileFormat) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.read_timeout_ms == 0 {
            out.push(("read_timeout_ms".into(), "must be positive".into()));
        }
        if self.path.as_os_str().is_empty() {
            out.push(("path".into(), "must not be empty".into()));
            return out;
        }
        let opened = list(&self.path, format).and_then(|files| {
            files
                .iter()
                .try_for_each(|f| std::fs::File::open(f).map(drop).map_err(io_error(f)))
        });
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

/// A file source: its config and its files' format.
#[derive(Debug, Clone)]
pub struct FileSource {
    config: FileSourceConfig,
    format: FileFormat,
}

impl FileSource {
    /// A connector reading `config.path` as `format`.
    pub fn new(config: FileSourceConfig, format: FileFormat) -> Self {
        Self { config, format }
    }

    /// Lists the files and opens the first, within the read timeout; the body reads the rest.
    async fn body(&self) -> Result<SourceBody, FetchError> {
        let wait = self.read_timeout();
        let reader = tokio::time::timeout(wait, self.open())
            .await
            .map_err(|_| FetchError::Timeout(wait))?
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let frames = futures_util::stream::unfold(reader, |mut reader| async move {
            let next = reader.next().await?;
            Some((
                next.map(Frame::data).map_err(|e| BodyError(e.to_string())),
                reader,
            ))
        });
        Ok(StreamBody::new(frames).boxed())
    }

    async fn open(&self) -> Result<Reader, FileError> {
        let (path, format) = (self.config.path.clone(), self.format);
        let files = tokio::task::spawn_blocking(move || list(&path, format))
            .await
            .map_err(|e| io_error(&self.config.path)(io::Error::other(e)))??;
        let mut files = files.into_iter();
        let Some(first) = files.next() else {
            return match self.format {
                FileFormat::Csv => Err(FileError::NoFiles {
                    path: self.config.path.clone(),
                    pattern: self.format.pattern(),
                }),
                FileFormat::Ndjson => Ok(Reader::new(self.format, files, None)),
            };
        };
        let file = tokio::fs::File::open(&first).await.map_err(io_error(&first))?;
        Ok(Reader::new(self.format, files, Some(OpenFile::new(first, file))))
    }
}

impl Connector for FileSource {
    fn input_format(&self) -> InputFormat {
        self.format.input_format()
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.read_timeout_ms)
    }

    fn paging(&self) -> Paging {
        Paging::Stream
    }

    /// Streams the whole document from its first record; see the module documentation for why
    /// the fetch's page and filters are left to the gateway.
    fn fetch<'a>(&'a self, _fetch: &'a Fetch<'a>) -> BoxFuture<'a, Result<SourceData, FetchError>> {
        Box::pin(async move { self.body().await.map(SourceData::Bytes) })
    }
}

/// The file being read.
struct OpenFile {
    path: PathBuf,
    file: tokio::fs::File,
    /// CSV: the header row is still to be read.
    at_start: bool,
    /// The last byte the file put in the body, if any.
    last: Option<u8>,
    /// CSV: an odd number of quotes so far, i.e. inside a quoted cell (cells are strict
    /// RFC 4180, so only quoted cells hold quotes).
    in_quotes: bool,
}

impl OpenFile {
    fn new(path: PathBuf, file: tokio::fs::File) -> Self {
        Self {
            path,
            file,
            at_start: true,
            last: None,
            in_quotes: false,
        }
    }

    /// Appends up to [`CHUNK_BYTES`] to `buf`; 0 at the end of the file.
    async fn read(&mut self, buf: &mut BytesMut) -> Result<usize, FileError> {
        buf.reserve(CHUNK_BYTES);
        let mut limited = (&mut self.file).take(CHUNK_BYTES as u64);
        limited.read_buf(buf).await.map_err(io_error(&self.path))
    }
}

/// The body's state: the files left, the one being read and the document's header.
struct Reader {
    format: FileFormat,
    files: std::vec::IntoIter<PathBuf>,
    current: Option<OpenFile>,
    /// CSV: the first file's header row (without BOM and line end) and that file.
    header: Option<(Vec<u8>, PathBuf)>,
    failed: bool,
}

impl Reader {
    fn new(format: FileFormat, files: std::vec::IntoIter<PathBuf>, first: Option<OpenFile>) -> Self {
        Self {
            format,
            files,
            current: first,
            header: None,
            failed: false,
        }
    }

    /// The next chunk of the document; `None` at its end, and after an error.
    async fn next(&mut self) -> Option<Result<Bytes, FileError>> {
        if self.failed {
            return None;
        }
        let next = self.step().await;
        self.failed = next.is_err();
        next.transpose()
    }

    async fn step(&mut self) -> Result<Option<Bytes>, FileError> {
        loop {
            let Some(open) = self.current.as_mut() else {
                let Some(path) = self.files.next() else {
                    return Ok(None);
                };
                let file = tokio::fs::File::open(&path).await.map_err(io_error(&path))?;
                self.current = Some(OpenFile::new(path, file));
                continue;
            };
            let mut chunk = BytesMut::new();
            open.read(&mut chunk).await?;
            if self.format == FileFormat::Csv && open.at_start {
                chunk = csv_header(open, &mut self.header, chunk).await?;
                if chunk.is_empty() {
                    // The header row filled the reads: the file may go on.
                    continue;
                }
            }
            if chunk.is_empty() {
                let ended = open;
                if ended.in_quotes {
                    return Err(FileError::OpenQuote(ended.path.clone()));
                }
                let unterminated = ended.last.is_some_and(|b| b != b'\n');
                self.current = None;
                if unterminated && !self.files.as_slice().is_empty() {
                    return Ok(Some(Bytes::from_static(b"\n")));
                }
                continue;
            }
            if self.format == FileFormat::Csv {
                open.in_quotes ^= odd_quotes(&chunk);
            }
            open.last = chunk.last().copied();
            return Ok(Some(chunk.freeze()));
        }
    }
}

/// Reads a CSV file's header row (`chunk` is the file's first read) and checks it against the
/// first file's; returns what the body takes: the first file whole, later files without the
/// header row.
async fn csv_header(
    open: &mut OpenFile,
    header: &mut Option<(Vec<u8>, PathBuf)>,
    mut chunk: BytesMut,
) -> Result<BytesMut, FileError> {
    open.at_start = false;
    let end = loop {
        if let Some(end) = row_end(&chunk) {
            break end;
        }
        if chunk.len() > MAX_HEADER_BYTES {
            return Err(FileError::HeaderTooLong(open.path.clone()));
        }
        if open.read(&mut chunk).await? == 0 {
            break chunk.len();
        }
    };
    let row = chunk[..end].strip_prefix(BOM).unwrap_or(&chunk[..end]);
    let row = row.strip_suffix(b"\n").unwrap_or(row);
    let row = row.strip_suffix(b"\r").unwrap_or(row);
    if row.is_empty() {
        return Err(FileError::NoHeader(open.path.clone()));
    }
    match header {
        None => {
            *header = Some((row.to_vec(), open.path.clone()));
            Ok(chunk)
        }
        Some((first, _)) if first.as_slice() == row => {
            open.in_quotes = odd_quotes(&chunk[..end]);
            Ok(chunk.split_off(end))
        }
        Some((_, first)) => Err(FileError::HeaderDiffers {
            path: open.path.clone(),
            first: first.clone(),
        }),
    }
}

/// The end of the first CSV row (after its line feed), if `d` holds it whole.
fn row_end(d: &[u8]) -> Option<usize> {
    let mut quoted = false;
    for (i, &b) in d.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn odd_quotes(d: &[u8]) -> bool {
    d.iter().filter(|&&b| b == b'"').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sluice_policy::mask::PseudonymKey;
    use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
    use sluice_policy::stream::{Masker, MaskerLimits, OutputFormat};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// A fresh folder under the system's temporary folder, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "sluice-file-source-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, content: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, content).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn source(path: &Path, format: FileFormat) -> FileSource {
        let config = FileSourceConfig {
            path: path.to_owned(),
            read_timeout_ms: 1000,
        };
        FileSource::new(config, format)
    }

    /// The body's data frames, and the error that ended it, if any.
    async fn frames(s: &FileSource) -> (Vec<Bytes>, Option<BodyError>) {
        let mut body = s.fetch(&Fetch::default()).await.unwrap().into_bytes().unwrap();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => out.push(f.into_data().unwrap()),
                Err(e) => {
                    assert!(body.frame().await.is_none(), "nothing after the error");
                    return (out, Some(e));
                }
            }
        }
        (out, None)
    }

    async fn document(s: &FileSource) -> String {
        let (frames, err) = frames(s).await;
        assert!(err.is_none(), "{err:?}");
        String::from_utf8(frames.concat()).unwrap()
    }

    /// CSV rows `from..to` of a register with a header.
    fn rows(from: u32, to: u32) -> String {
        (from..to)
            .map(|i| format!("H-{i:06},\"Huangpu, {i}\",1{i:010}\n"))
            .collect()
    }

    const HEADER: &str = "id,address,mobile\n";

    #[tokio::test]
    async fn a_file_larger_than_a_chunk_streams_in_several_frames_unchanged() {
        let dir = TempDir::new();
        let content = format!("\u{feff}{HEADER}{}", rows(0, 6_000));
        assert!(content.len() > 3 * CHUNK_BYTES);
        let file = dir.write("register.csv", content.as_bytes());
        let (frames, err) = frames(&source(&file, FileFormat::Csv)).await;
        assert!(err.is_none(), "{err:?}");
        assert!(frames.len() >= 4, "{} frames", frames.len());
        assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= CHUNK_BYTES));
        assert_eq!(frames.concat(), content.as_bytes());
    }

    #[tokio::test]
    async fn the_file_is_read_only_when_the_body_is_polled() {
        use std::io::{Seek, Write};
        let dir = TempDir::new();
        let line = |n: u32, c: char| format!("{{\"n\":{n:06},\"c\":\"{c}\"}}\n");
        let old: String = (0..10_000).map(|n| line(n, 'a')).collect();
        let file = dir.write("register.ndjson", old.as_bytes());
        let mut body = source(&file, FileFormat::Ndjson)
            .fetch(&Fetch::default())
            .await
            .unwrap()
            .into_bytes()
            .unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        // Rewrite everything after the first chunk: the body must serve the new bytes.
        let new: String = (0..10_000).map(|n| line(n, 'b')).collect();
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.seek(std::io::SeekFrom::Start(first.len() as u64)).unwrap();
        f.write_all(&new.as_bytes()[first.len()..]).unwrap();
        drop(f);
        let mut rest = Vec::new();
        while let Some(frame) = body.frame().await {
            rest.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(first, old.as_bytes()[..first.len()]);
        assert_eq!(rest, new.as_bytes()[first.len()..]);
    }

    #[tokio::test]
    async fn a_csv_folder_is_one_document_with_one_header() {
        let dir = TempDir::new();
        // Written out of order; read in byte order of name. BOMs and CRLF header lines
        // compare equal; other files are left out.
        dir.write(
            "b.csv",
            format!("\u{feff}id,address,mobile\r\n{}", rows(2, 4)).as_bytes(),
        );
        dir.write("a.csv", format!("{HEADER}{}", rows(0, 2)).as_bytes());
        // No line break at its end: one is added before the next file.
        let c = format!("{HEADER}{}", rows(4, 6));
        dir.write("c.CSV", c.trim_end().as_bytes());
        dir.write("d.txt", b"not,a,register\n");
        dir.write(".e.csv", b"partial,upload\n");
        std::fs::create_dir(dir.0.join("f.csv")).unwrap();
        let doc = document(&source(&dir.0, FileFormat::Csv)).await;
        assert_eq!(doc, format!("{HEADER}{}", rows(0, 6).trim_end()));
    }

    #[tokio::test]
    async fn a_csv_file_with_another_header_ends_the_body_with_an_error_naming_it() {
        let dir = TempDir::new();
        dir.write("2025-01.csv", format!("{HEADER}{}", rows(0, 2)).as_bytes());
        dir.write(
            "2025-02.csv",
            format!("id,mobile,address\n{}", rows(2, 4)).as_bytes(),
        );
        dir.write("2025-03.csv", format!("{HEADER}{}", rows(4, 6)).as_bytes());
        let (frames, err) = frames(&source(&dir.0, FileFormat::Csv)).await;
        let err = err.expect("the body fails").to_string();
        assert!(
            err.contains("2025-02.csv") && err.contains("2025-01.csv"),
            "{err}"
        );
        // Nothing of the second file, nor of any file after it, was sent.
        assert_eq!(frames.concat(), format!("{HEADER}{}", rows(0, 2)).as_bytes());
    }

    #[tokio::test]
    async fn csv_files_without_a_header_or_ending_in_a_quote_fail_closed() {
        let dir = TempDir::new();
        dir.write("a.csv", HEADER.as_bytes());
        dir.write("b.csv", b"");
        let (_, err) = frames(&source(&dir.0, FileFormat::Csv)).await;
        let err = err.expect("the body fails").to_string();
        assert!(err.contains("b.csv") && err.contains("no header row"), "{err}");

        let dir = TempDir::new();
        dir.write("a.csv", format!("{HEADER}H-1,\"open\n").as_bytes());
        dir.write("b.csv", format!("{HEADER}H-2,x\",1\n").as_bytes());
        let (_, err) = frames(&source(&dir.0, FileFormat::Csv)).await;
        let err = err.expect("the body fails").to_string();
        assert!(err.contains("a.csv") && err.contains("quoted cell"), "{err}");

        // A quoted line break in the header belongs to the header row.
        let dir = TempDir::new();
        let header = "id,\"address\nline\",mobile\n";
        dir.write("a.csv", format!("{header}{}", rows(0, 1)).as_bytes());
        dir.write("b.csv", format!("{header}{}", rows(1, 2)).as_bytes());
        let doc = document(&source(&dir.0, FileFormat::Csv)).await;
        assert_eq!(doc, format!("{header}{}", rows(0, 2)));
    }

    #[tokio::test]
    async fn a_header_row_that_fills_a_read_keeps_the_rows_after_it() {
        let dir = TempDir::new();
        let header = format!("id,{}\n", "x".repeat(CHUNK_BYTES - 4));
        assert_eq!(header.len(), CHUNK_BYTES);
        dir.write("a.csv", format!("{header}1,a\n").as_bytes());
        dir.write("b.csv", format!("{header}2,b\n").as_bytes());
        dir.write("c.csv", header.as_bytes());
        let doc = document(&source(&dir.0, FileFormat::Csv)).await;
        assert_eq!(doc, format!("{header}1,a\n2,b\n"));
    }

    #[tokio::test]
    async fn an_empty_folder_fails_a_csv_fetch_and_is_an_empty_ndjson_document() {
        let dir = TempDir::new();
        let Err(e) = source(&dir.0, FileFormat::Csv).fetch(&Fetch::default()).await else {
            panic!("no CSV document without a header")
        };
        assert!(matches!(e, FetchError::Unreachable(_)), "{e:?}");
        assert!(e.to_string().contains("no *.csv file"), "{e}");
        assert_eq!(document(&source(&dir.0, FileFormat::Ndjson)).await, "");
    }

    #[tokio::test]
    async fn ndjson_files_are_joined_with_a_line_break_where_one_is_missing() {
        let dir = TempDir::new();
        dir.write("1.ndjson", b"{\"id\":1}\n");
        dir.write("2.jsonl", b"{\"id\":2}\n{\"id\":3}");
        dir.write("3.ndjson", b"");
        dir.write("4.ndjson", b"{\"id\":4}");
        dir.write("5.json", b"[]");
        let doc = document(&source(&dir.0, FileFormat::Ndjson)).await;
        assert_eq!(doc, "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n{\"id\":4}");
    }

    #[tokio::test]
    async fn the_masker_reads_a_folder_as_one_csv_document() {
        let dir = TempDir::new();
        dir.write("a.csv", format!("\u{feff}{HEADER}{}", rows(0, 3)).as_bytes());
        dir.write("b.csv", format!("{HEADER}{}", rows(3, 5)).as_bytes());
        let plan = FieldPlan {
            record_key: None,
            marks: None,
            fields: vec![
                PlannedField {
                    name: "id".into(),
                    action: FieldAction::Emit { scan: false },
                },
                PlannedField {
                    name: "mobile".into(),
                    action: FieldAction::Mask(sluice_policy::mask::MaskRule::Partial { first: 3, last: 4 }),
                },
            ],
            row_filter: None,
            key: PseudonymKey::derive(b"master", "acme", "register"),
        };
        let s = source(&dir.0, FileFormat::Csv);
        let mut masker = Masker::new(
            Arc::new(plan),
            s.input_format(),
            OutputFormat::Ndjson,
            MaskerLimits::default(),
        );
        let (frames, err) = frames(&s).await;
        assert!(err.is_none(), "{err:?}");
        let mut out = Vec::new();
        for f in &frames {
            masker.feed(f, &mut out).unwrap();
        }
        let stats = masker.finish(&mut out).unwrap();
        assert_eq!(stats.records_out, 5);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 5);
        assert!(
            out.starts_with("{\"id\":\"H-000000\",\"mobile\":\"100****0000\"}\n"),
            "{out}"
        );
        assert!(
            out.ends_with("{\"id\":\"H-000004\",\"mobile\":\"100****0004\"}\n"),
            "{out}"
        );
    }

    #[test]
    fn validate_names_a_missing_or_unreadable_path() {
        let dir = TempDir::new();
        let missing = dir.0.join("missing.csv");
        let problems = source(&missing, FileFormat::Csv).config.validate(FileFormat::Csv);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "path");
        assert!(problems[0].1.contains("missing.csv"), "{problems:?}");

        let empty = FileSourceConfig {
            path: PathBuf::new(),
            read_timeout_ms: 0,
        };
        let fields: Vec<String> = empty
            .validate(FileFormat::Ndjson)
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(fields, ["read_timeout_ms", "path"]);

        let file = dir.write("register.csv", HEADER.as_bytes());
        assert!(source(&file, FileFormat::Csv)
            .config
            .validate(FileFormat::Csv)
            .is_empty());
        assert!(source(&dir.0, FileFormat::Csv)
            .config
            .validate(FileFormat::Csv)
            .is_empty());
    }

    #[test]
    fn relative_paths_resolve_from_the_config_folder() {
        let mut c = FileSourceConfig {
            path: "data/register.csv".into(),
            read_timeout_ms: 1,
        };
        c.resolve_paths(Path::new("/etc/sluice"));
        assert_eq!(c.path, Path::new("/etc/sluice/data/register.csv"));
        c.resolve_paths(Path::new("/elsewhere"));
        assert_eq!(c.path, Path::new("/etc/sluice/data/register.csv"));
    }
}
