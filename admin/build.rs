//! `admin --version`: the crate's version, and the git commit it was built from when the
//! build runs in a git checkout (a build from a source tarball or an image without `.git`
//! prints the version alone).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| text.trim().to_owned())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let full = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            // Rebuilt when HEAD moves: a commit, a checkout, or the branch ref it names.
            for path in ["HEAD", "refs/heads", "packed-refs"] {
                if let Some(file) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={file}");
                }
            }
            format!("{version} (git {commit})")
        }
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=ADMIN_VERSION={full}");
}
