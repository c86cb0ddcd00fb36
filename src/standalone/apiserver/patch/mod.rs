//! Patch strategies: strategic merge and server-side apply.
