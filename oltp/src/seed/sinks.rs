//! Sinks without a database: SHA-256 per table (for reproducibility checks) and one CSV file per table
//! (for loading with `psql \copy`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::csv::Sink;
use super::schema::TABLES;
use crate::{Error, Result};

/// Hashes every table's CSV bytes.
pub(crate) struct HashSink {
    hashers: Vec<Sha256>,
}

impl std::fmt::Debug for HashSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashSink").finish_non_exhaustive()
    }
}

impl HashSink {
    pub fn new() -> Self {
        HashSink { hashers: TABLES.iter().map(|_| Sha256::new()).collect() }
    }

    /// Lower-case hex digests, in table order.
    pub fn finish(self) -> Vec<String> {
        self.hashers.into_iter().map(|h| hex::encode(h.finalize())).collect()
    }
}

impl Sink for HashSink {
    fn begin_table(&mut self, _: usize) -> Result<()> {
        Ok(())
    }
    fn data(&mut self, table: usize, chunk: Vec<u8>) -> Result<()> {
        self.hashers[table].update(&chunk);
        Ok(())
    }
    fn end_table(&mut self, _: usize, _: u64) -> Result<()> {
        Ok(())
    }
}

/// Appends every table's rows to `<dir>/<table>.csv`.
#[derive(Debug)]
pub(crate) struct FileSink {
    files: Vec<(PathBuf, BufWriter<File>)>,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Seed { message: format!("writing {}: {e}", path.display()) }
}

impl FileSink {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let files = TABLES
            .iter()
            .map(|t| {
                let path = dir.join(format!("{}.csv", t.name));
                let file = File::create(&path).map_err(|e| io_error(&path, e))?;
                Ok((path, BufWriter::with_capacity(1 << 16, file)))
            })
            .collect::<Result<_>>()?;
        Ok(FileSink { files })
    }

    /// Flushes every file and returns their paths in table order.
    pub fn finish(self) -> Result<Vec<PathBuf>> {
        self.files
            .into_iter()
            .map(|(path, mut w)| {
                w.flush().map_err(|e| io_error(&path, e))?;
                Ok(path)
            })
            .collect()
    }
}

impl Sink for FileSink {
    fn begin_table(&mut self, _: usize) -> Result<()> {
        Ok(())
    }
    fn data(&mut self, table: usize, chunk: Vec<u8>) -> Result<()> {
        let (path, w) = &mut self.files[table];
        w.write_all(&chunk).map_err(|e| io_error(path, e))
    }
    fn end_table(&mut self, _: usize, _: u64) -> Result<()> {
        Ok(())
    }
}
