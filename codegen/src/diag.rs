//! Diagnostics: every problem the generator finds is collected with the file and
//! JSON pointer it concerns, so one run reports all of them instead of stopping at
//! the first (or, worse, panicking or dropping the construct silently).

use std::fmt;

/// Where in the spec a problem is: a file (relative to the spec root when possible)
/// and a JSON pointer inside it (RFC 6901, `""` for the whole document).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: String,
    pub pointer: String,
}

impl Location {
    pub fn new(file: impl Into<String>, pointer: impl Into<String>) -> Self {
        Location {
            file: file.into(),
            pointer: pointer.into(),
        }
    }

    /// The location of a child key, escaping it as RFC 6901 requires.
    pub fn join(&self, key: impl fmt::Display) -> Location {
        let key = key.to_string().replace('~', "~0").replace('/', "~1");
        Location {
            file: self.file.clone(),
            pointer: format!("{}/{}", self.pointer, key),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}#{}", self.file, self.pointer)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
    /// A warning is reported but does not stop generation: the spec is wrong in a
    /// way the generator can handle safely (e.g. an undefined security scheme).
    pub warning: bool,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.warning { "warning" } else { "error" };
        write!(f, "{}: {kind}: {}", self.location, self.message)
    }
}

/// All problems found in one run, sorted and de-duplicated so the report is stable.
#[derive(Debug, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, location: &Location, message: impl Into<String>) {
        self.0.push(Diagnostic {
            location: location.clone(),
            message: message.into(),
            warning: false,
        });
    }

    pub fn warn(&mut self, location: &Location, message: impl Into<String>) {
        self.0.push(Diagnostic {
            location: location.clone(),
            message: message.into(),
            warning: true,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| !d.warning)
    }

    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.0.sort();
        self.0.dedup();
        self.0
    }
}

/// The error a generation run returns: one or more diagnostics.
#[derive(Debug)]
pub struct Error(pub Vec<Diagnostic>);

impl Error {
    /// An error of a single problem (e.g. a file that cannot be read at all).
    pub fn at(location: Location, message: impl Into<String>) -> Error {
        Error(vec![Diagnostic {
            location,
            message: message.into(),
            warning: false,
        }])
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
