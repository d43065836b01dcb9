//! The fields a request got wrong, bounded: a body can hold hundreds of thousands of
//! mistakes, and neither the work of describing them nor the answer may grow with it.

use serde::Serialize;

/// One field that failed: its dotted name (`client.id`), its JSON pointer and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub pointer: String,
    pub message: String,
}

/// The first `cap` errors found, and how many more there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors {
    shown: Vec<FieldError>,
    omitted: usize,
    cap: usize,
}

impl FieldErrors {
    pub fn with_cap(cap: usize) -> Self {
        Self {
            shown: Vec::new(),
            omitted: 0,
            cap: cap.max(1),
        }
    }

    /// `path` is the field's segments: `["client", "id"]`, `["transcription", "2", "role"]`.
    pub fn push(&mut self, path: &[&str], message: impl Into<String>) {
        if self.shown.len() >= self.cap {
            self.omitted += 1;
            return;
        }
        let field = path
            .iter()
            .enumerate()
            .map(|(i, seg)| match seg.parse::<usize>() {
                Ok(index) if i > 0 => format!("[{index}]"),
                _ if i > 0 => format!(".{seg}"),
                _ => (*seg).to_owned(),
            })
            .collect();
        let pointer = path
            .iter()
            .map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1")))
            .collect();
        self.shown.push(FieldError {
            field,
            pointer,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Every error found, shown or not.
    pub fn count(&self) -> usize {
        self.shown.len() + self.omitted
    }

    /// Errors found beyond the cap, counted but not described.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.shown.iter()
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<_> = self
            .shown
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))?;
        if self.omitted > 0 {
            write!(f, "; and {} more", self.omitted)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_errors_are_counted_not_kept() {
        let mut errors = FieldErrors::with_cap(2);
        for i in 0..5 {
            errors.push(&["transcription", &i.to_string(), "text"], "is required");
        }
        assert_eq!(errors.iter().count(), 2);
        assert_eq!(errors.omitted(), 3);
        assert_eq!(errors.count(), 5);
        assert!(errors.to_string().ends_with("; and 3 more"));
        let first = errors.iter().next().unwrap();
        assert_eq!(first.field, "transcription[0].text");
        assert_eq!(first.pointer, "/transcription/0/text");
    }
}
