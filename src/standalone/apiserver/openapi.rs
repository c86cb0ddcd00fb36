//! (filled in by the openapi work)
