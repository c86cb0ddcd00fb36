//! Pool auto-assign for `poolRef: "*"` (in progress).
