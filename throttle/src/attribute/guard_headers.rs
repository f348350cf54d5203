//! [`GuardHeaders`]: the headers an attribute's guard carries to its handler's response.

use crate::headers::resolved::Resolved;
use crate::throttles::core::{Core, Figured};
use http::HeaderMap;
use smallvec::SmallVec;

/// The headers of a handler's admitted hits, written into its response once it is made;
/// the response's own headers win, then a higher attribute's over a lower one's.
#[derive(Debug, Clone, Default)]
pub(crate) enum GuardHeaders {
    /// Nothing to write.
    #[default]
    None,
    /// One attribute's admission, whose headers read only its figures: resolved as they
    /// are written, with nothing resolved or moved before.
    Figured(&'static Core, Figured),
    /// Headers resolved at the hit, the top attribute's first.
    Resolved(Box<SmallVec<[Resolved; 1]>>),
}

impl GuardHeaders {
    /// Resolved headers, the top attribute's first; `None` when there are none.
    pub(crate) fn resolved(headers: SmallVec<[Resolved; 1]>) -> Self {
        if headers.iter().all(Resolved::is_empty) {
            GuardHeaders::None
        } else {
            GuardHeaders::Resolved(Box::new(headers))
        }
    }

    /// Writes the headers the response's map does not have yet.
    pub(crate) fn write_missing_into(self, target: &mut HeaderMap) {
        match self {
            GuardHeaders::None => {}
            GuardHeaders::Figured(core, figured) => core.write_figured(figured, target),
            GuardHeaders::Resolved(headers) => {
                for resolved in *headers {
                    resolved.write_missing_into(target);
                }
            }
        }
    }

    /// The headers as a map of their own.
    pub(crate) fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        self.clone().write_missing_into(&mut map);
        map
    }
}
