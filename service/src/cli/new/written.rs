//! What `warrant new` wrote, so that a failure halfway can take it back:
//! a second attempt then finds the name free again.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::error::NewCommandError;

#[derive(Debug, Default)]
pub struct Written {
    /// Files and folders created, in order.
    created: Vec<PathBuf>,
    /// Files rewritten, with what they held before.
    replaced: Vec<(PathBuf, String)>,
}

impl Written {
    pub fn create_dir(&mut self, path: &Path) -> Result<(), NewCommandError> {
        std::fs::create_dir(path).map_err(NewCommandError::io(path))?;
        self.created.push(path.to_owned());
        Ok(())
    }

    /// Creates `path`, refusing to overwrite a file that appeared meanwhile.
    pub fn create(&mut self, path: &Path, text: &str) -> Result<(), NewCommandError> {
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(NewCommandError::io(path))?;
        self.created.push(path.to_owned());
        file.write_all(text.as_bytes()).map_err(NewCommandError::io(path))
    }

    pub fn replace(&mut self, path: &Path, before: &str, after: &str) -> Result<(), NewCommandError> {
        self.replaced.push((path.to_owned(), before.to_owned()));
        std::fs::write(path, after).map_err(NewCommandError::io(path))
    }

    /// Best effort: removes what was created (newest first) and restores
    /// what was replaced.
    pub fn undo(self) {
        for (path, before) in self.replaced {
            let _ = std::fs::write(path, before);
        }
        for path in self.created.into_iter().rev() {
            let _ = if path.is_dir() { std::fs::remove_dir(&path) } else { std::fs::remove_file(&path) };
        }
    }
}
