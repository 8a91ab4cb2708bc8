//! Scratch directories for logs, configuration and data.

use std::path::{Path, PathBuf};

/// A scratch directory under the temp dir, removed on drop unless [kept](ScratchDir::keep).
///
/// Made by `tempfile`: a fresh name with a random part (`shop-<label>-XXXXXX`), created
/// with mode 0700, never a directory someone else made or could guess beforehand.
#[derive(Debug)]
pub struct ScratchDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl ScratchDir {
    pub fn new(label: &str) -> std::io::Result<Self> {
        let dir = private_temp_dir(&format!("shop-{label}-"))?;
        Ok(Self {
            path: dir.path().to_owned(),
            dir: Some(dir),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place when dropped (logs someone may want to read).
    pub fn keep(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
    }
}

/// A new directory under the temp dir named `prefix` + random characters, mode 0700
/// (tempfile's own default follows the umask: 0755).
pub(crate) fn private_temp_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn scratch_dirs_are_private_and_unpredictably_named() {
        let (a, b) = (ScratchDir::new("t").unwrap(), ScratchDir::new("t").unwrap());
        for dir in [&a, &b] {
            let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{mode:o}");
            let name = dir.path().file_name().unwrap().to_str().unwrap();
            let random = name.strip_prefix("shop-t-").expect(name);
            // Not `<pid>-<counter>`, as the name used to be: random letters and digits.
            assert!(random.len() >= 6, "{name}");
            assert!(
                !random.starts_with(&std::process::id().to_string()),
                "{name}"
            );
            assert!(random.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
        }
        assert_ne!(a.path(), b.path());
        let (kept, dropped) = (a.path().to_owned(), b.path().to_owned());
        let mut a = a;
        a.keep();
        drop((a, b));
        assert!(kept.is_dir() && !dropped.exists());
        std::fs::remove_dir(&kept).unwrap();
    }
}
