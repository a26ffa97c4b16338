//! The `--report-file` (JSON) and `--report-html` files: checked before the run, so a path that cannot take the report fails
//! at start rather than after ten minutes of load, and written whole or not at all, so a
//! failed write never leaves half a report or loses the previous one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::Report;

/// What a report file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Json,
    Html,
}

/// Where the report goes.
#[derive(Debug)]
pub enum ReportFile {
    /// A regular file, replaced by rename once the report is written beside it.
    Regular { path: PathBuf, created: bool },
    /// Anything else that takes writes (`/dev/stdout`, a FIFO), written in place.
    Stream { path: PathBuf, file: File },
}

impl ReportFile {
    /// Proves `path` takes bytes without changing what it holds: some files open for writing
    /// and then refuse every write (`/proc/version` as root). A new file is created (and
    /// removed by [`ReportFile::discard`] if no report comes).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() => {
                let file = OpenOptions::new().write(true).open(path)?;
                return Ok(ReportFile::Stream {
                    path: path.to_path_buf(),
                    file,
                });
            }
            _ => {}
        }
        let created = !path.exists();
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // Write the first byte back, or a byte that is then cut off if the file is empty.
        let mut first = [0u8; 1];
        let n = f.read(&mut first)?;
        f.rewind()?;
        if n == 1 {
            f.write_all(&first)?;
        } else {
            f.write_all(b"\n")?;
            f.set_len(0)?;
        }
        f.flush()?;
        Ok(ReportFile::Regular {
            path: path.to_path_buf(),
            created,
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            ReportFile::Regular { path, .. } | ReportFile::Stream { path, .. } => path,
        }
    }

    /// Writes the report in `format`: into a file beside a regular one, then renamed over it.
    pub fn write(self, report: &Report, format: FileFormat) -> std::io::Result<()> {
        self.write_with(|w| match format {
            FileFormat::Json => report.write_json(w),
            FileFormat::Html => crate::html::write(report, w),
        })
    }

    /// Writes what `render` writes, whole or not at all, as [`ReportFile::write`] does.
    pub fn write_with(
        self,
        render: impl Fn(&mut File) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        match self {
            ReportFile::Stream { mut file, .. } => {
                render(&mut file)?;
                file.flush()
            }
            ReportFile::Regular { path, .. } => {
                let mut partial = path.clone().into_os_string();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                let written = File::create(&partial).and_then(|mut f| {
                    render(&mut f)?;
                    f.sync_all()
                });
                match written.and_then(|()| std::fs::rename(&partial, &path)) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let _ = std::fs::remove_file(&partial);
                        Err(e)
                    }
                }
            }
        }
    }

    /// For a run that ends without a report: removes the file if the check created it.
    pub fn discard(self) {
        if let ReportFile::Regular {
            path,
            created: true,
        } = self
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_report_is_kept_until_the_new_one_is_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        std::fs::write(&path, "old").expect("write");
        let f = ReportFile::open(&path).expect("open");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old");
        f.discard();
        assert!(
            path.exists(),
            "a file the run did not create is never removed"
        );
        let f = ReportFile::open(&dir.path().join("new.json")).expect("open");
        assert!(dir.path().join("new.json").exists());
        f.discard();
        assert!(!dir.path().join("new.json").exists());
    }

    #[test]
    fn device_files_are_written_in_place() {
        let f = ReportFile::open(Path::new("/dev/null")).expect("open");
        assert!(matches!(f, ReportFile::Stream { .. }));
    }
}
