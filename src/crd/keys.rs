//! Label, annotation and finalizer keys shared with the upstream controller and server.

/// Ledger of pods currently allocated to a BatchSandbox (`{"pods":[...]}`).
pub const ANNOTATION_ALLOC_STATUS: &str = "sandbox.opensandbox.io/alloc-status";
/// Pods a BatchSandbox asks its pool to take back (`{"pods":[...]}`).
pub const ANNOTATION_ALLOC_RELEASE: &str = "sandbox.opensandbox.io/alloc-release";
/// Pods whose recycle the pool has completed (`{"pods":[...]}`).
pub const ANNOTATION_ALLOC_RELEASED: &str = "sandbox.opensandbox.io/alloc-released";
/// Replicas of a BatchSandbox whose task finished and whose pod was given back under
/// `taskResourcePolicyWhenCompleted: Release` (`{"<index>":"SUCCEED"|"FAILED"}`): never
/// refilled, and their results survive a controller restart.
pub const ANNOTATION_RELEASED_TASKS: &str = "sandbox.opensandbox.io/released-tasks";
/// Pod IPs of a BatchSandbox in pod-index order (JSON array of strings).
pub const ANNOTATION_ENDPOINTS: &str = "sandbox.opensandbox.io/endpoints";
/// Restart-recycle bookkeeping on a pool pod.
pub const ANNOTATION_RESTART_RECORD: &str = "sandbox.opensandbox.io/restart-record";
/// Restart-recycle configuration on a Pool.
pub const ANNOTATION_RESTART_CONFIG: &str = "sandbox.opensandbox.io/restart-config";

/// Owning pool of a pool pod.
/// On an SDK-created BatchSandbox with `secureAccess`: its executor's access token.
pub const ANNOTATION_SECURE_ACCESS_TOKEN: &str = "opensandbox.io/secure-access-token";

/// On the leader-election Lease: the SDK API base URL of the holder, where followers forward.
pub const ANNOTATION_LEADER_API_ADDRESS: &str = "sandbox.opensandbox.io/leader-api-address";

pub const LABEL_POOL_NAME: &str = "sandbox.opensandbox.io/pool-name";
/// Pool template revision a pool pod was created from.
pub const LABEL_POOL_REVISION: &str = "sandbox.opensandbox.io/pool-revision";
/// Replica index of a template-mode BatchSandbox pod.
pub const LABEL_POD_INDEX: &str = "batch-sandbox.sandbox.opensandbox.io/pod-index";
/// Owning BatchSandbox of a template-mode pod.
pub const LABEL_BATCH_SANDBOX_NAME: &str = "batch-sandbox.sandbox.opensandbox.io/name";
/// Presence asks the pool to drain an idle pod.
pub const LABEL_EVICT: &str = "pool.opensandbox.io/evict";
/// Selects a Pool's eviction handler (only the default exists).
pub const LABEL_EVICTION_HANDLER: &str = "pool.opensandbox.io/eviction-handler";
/// Snapshot name on commit and unpause Jobs.
pub const LABEL_SANDBOX_SNAPSHOT_NAME: &str = "sandbox.opensandbox.io/sandbox-snapshot-name";
/// Marks Jobs that need privileged node access.
pub const LABEL_PRIVILEGED_NODE_ACCESS: &str = "sandbox.opensandbox.io/privileged-node-access";
/// Put on every pod this controller creates, so one label selector finds all of them.
pub const LABEL_MANAGED: &str = "sandbox.opensandbox.io/managed";
/// Value of [`LABEL_MANAGED`].
pub const LABEL_MANAGED_VALUE: &str = "true";

/// BatchSandbox with tasks: removed once every task is stopped and collected.
pub const FINALIZER_TASK_CLEANUP: &str = "batch-sandbox.sandbox.opensandbox.io/task-cleanup";
/// BatchSandbox holding pool pods: removed once every allocated pod is released.
pub const FINALIZER_POOL_ALLOCATION: &str = "pool.sandbox.opensandbox.io/pool-allocation";
/// SandboxSnapshot: removed once its Jobs are deleted.
pub const FINALIZER_SNAPSHOT_CLEANUP: &str = "sandboxsnapshot.sandbox.opensandbox.io/cleanup";

/// `spec.poolRef` value that asks the controller to pick a matching pool.
pub const POOL_REF_AUTO: &str = "*";

/// On a pod: the controller asks the node agent to freeze (`"true"`) the pod's processes
/// (standalone pause). Removing it asks for a thaw.
pub const ANNOTATION_FREEZE: &str = "sandbox.opensandbox.io/freeze";
/// On a pod: written by the node agent once the pod's processes are frozen (`"true"`);
/// removed once they run again.
pub const ANNOTATION_FROZEN: &str = "sandbox.opensandbox.io/frozen";
/// Suffix of the SandboxSnapshot a BatchSandbox pause creates (`<bs>-pause`).
pub const PAUSE_SNAPSHOT_SUFFIX: &str = "-pause";
/// Job label that names the Job (set by the Job controller).
pub const LABEL_JOB_NAME: &str = "job-name";
