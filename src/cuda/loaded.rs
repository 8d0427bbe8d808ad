//! [`Loaded`]: the modules loaded into one CUDA context, one table shared by every
//! [`GpuContext`](super::GpuContext) opened on that context.
//!
//! Loading a module waits for the kernels running in its context (the driver synchronizes the
//! context; CUDA's lazy-loading notes warn of the same for kernels that wait on each other). On
//! the H100, `cuModuleLoadData` for the clock probe spun for as long as a kernel held every SM,
//! and kept spinning after that kernel was asked to stop (docs/DESIGN-NOTES.md, "A module loads
//! once per CUDA context"). A module already loaded is never loaded again in the same context,
//! whichever `GpuContext` asks: an app that opened its device and loaded perdix's kernels
//! before its own long kernel runs gets them from this table while that kernel runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use cudarc::driver::{CudaContext, CudaModule};

use super::key::ModuleKey;
use super::params::Entries;

/// A loaded module and its entry points' parameters.
pub(super) type Module = (Arc<CudaModule>, Arc<Entries>);

/// The modules of one CUDA context by key (a SHA-256 of everything that determines the PTX).
/// Each module holds its context, so the context outlives the table and its handle is not
/// reused while the table lives.
#[derive(Default)]
pub(super) struct Loaded {
    modules: Mutex<HashMap<ModuleKey, Module>>,
}

/// The tables of the contexts that some `GpuContext` still holds, by context handle: as many
/// entries as live contexts (dead ones are dropped at each lookup).
static TABLES: Mutex<Vec<(usize, Weak<Loaded>)>> = Mutex::new(Vec::new());

impl Loaded {
    /// The table of `ctx`'s CUDA context: the one another `GpuContext` on it already holds, or
    /// a new one.
    pub(super) fn of(ctx: &CudaContext) -> Arc<Self> {
        let handle = ctx.cu_ctx() as usize;
        let mut tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
        tables.retain(|(_, table)| table.strong_count() > 0);
        if let Some(table) = tables
            .iter()
            .find(|(key, _)| *key == handle)
            .and_then(|(_, table)| table.upgrade())
        {
            return table;
        }
        let table = Arc::new(Self::default());
        tables.push((handle, Arc::downgrade(&table)));
        table
    }

    /// The table, locked (a panic while it was held left it whole: entries are inserted
    /// only once loaded).
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<ModuleKey, Module>> {
        self.modules.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
