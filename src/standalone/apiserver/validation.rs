//! (filled in by the validation work)
