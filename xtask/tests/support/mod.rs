//! Shared by the xtask command-line tests: run the built binary as a user would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace's one definition of "in CI" and of a visible skip.
#[path = "../../../tests/support/skip.rs"]
pub mod skip;

pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// A copy of api/ (under the test's scratch space, in `name/api`) with one
/// more file, `synapse/mas.yaml`: the codegen fixture of an API the service
/// calls (`x-served: false`), or, with `served`, the same file served.
pub fn api_calling_synapse(name: &str, served: bool) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(name)
        .join("api");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root().join("api"), &dir);
    let mas = std::fs::read_to_string(root().join("codegen/tests/fixtures/client_only/mas.yaml"))
        .unwrap();
    assert!(mas.contains("\nx-served: false\n"));
    let mas = if served {
        mas.replace("\nx-served: false\n", "\n")
    } else {
        mas
    };
    std::fs::create_dir_all(dir.join("synapse")).unwrap();
    std::fs::write(dir.join("synapse/mas.yaml"), mas).unwrap();
    dir
}
