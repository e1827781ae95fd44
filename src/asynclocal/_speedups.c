/* asynclocal._speedups: the hot paths of the core, in C (optional).
 *
 * A pure-Python implementation with the same interface lives in
 * asynclocal/_fallback.py and is used when this module cannot be built or
 * ASYNCLOCAL_PURE_PYTHON=1 is set. Only the fast paths are here; every slow
 * path (a coroutine result, a non-callable fn) calls back into Python helpers
 * registered with _set_helpers(), so both implementations share that code.
 *
 * StorageBase: the ContextVar and the default of an AsyncLocalStorage, and
 *   get_store() / run() / exit(). get_store is a plain METH_NOARGS method so
 *   `als.get_store()` takes the same specialised method-call path as a raw
 *   `var.get()`.
 * ContextRunner: runner(fn, *args, **kwargs) (snapshot) or bound(*args,
 *   **kwargs) (bind): each call runs in a fresh copy of the captured Context,
 *   so it is re-entrant and thread-safe, and discards what the callee changed.
 *
 * Interpreters: multi-phase initialisation (PEP 489) with heap types and all
 * state in the module object, so every (sub)interpreter gets its own module,
 * including interpreters with their own GIL (3.12+). On free-threaded builds
 * (3.13t+) the module declares that it does not need the GIL: the one mutable
 * field shared between threads, StorageBase.var (swapped by disable()), and
 * StorageBase.default_ are read and written inside a per-object critical
 * section, and every read takes a strong reference before the lock is dropped.
 *
 * C API of CPython 3.10-3.14.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"

#if PY_VERSION_HEX >= 0x030D0000
#  define AL_BEGIN_CRITICAL_SECTION(op) Py_BEGIN_CRITICAL_SECTION(op)
#  define AL_END_CRITICAL_SECTION() Py_END_CRITICAL_SECTION()
#else
/* No free-threaded builds before 3.13: the GIL serialises these blocks. */
#  define AL_BEGIN_CRITICAL_SECTION(op) {
#  define AL_END_CRITICAL_SECTION() }
#endif

/* -- module state ------------------------------------------------------------ */

typedef struct {
    PyTypeObject *storage_type;
    PyTypeObject *runner_type;
    /* helpers registered from Python (slow paths only) */
    PyObject *raise_not_callable;  /* (method: str, fn) -> raises */
    PyObject *await_with_store;    /* (var, store, default, coro) -> coro */
    PyObject *run_coroutine_in;    /* (ctx, coro) -> coro */
} module_state;

static struct PyModuleDef speedups_module;

static inline module_state *
get_state(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

/* The module that defined `type` or one of its bases (borrowed), or NULL with an error. */
static PyObject *
module_of(PyTypeObject *type)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyType_GetModuleByDef(type, &speedups_module);
#else
    PyObject *mro = type->tp_mro;
    if (mro != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
            PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
            if (!PyType_HasFeature(t, Py_TPFLAGS_HEAPTYPE)) {
                continue;
            }
            PyObject *m = ((PyHeapTypeObject *)t)->ht_module;
            if (m != NULL && PyModule_GetDef(m) == &speedups_module) {
                return m;
            }
        }
    }
    PyErr_Format(PyExc_TypeError, "PyType_GetModuleByDef: No superclass of '%s' has the "
                 "given module", type->tp_name);
    return NULL;
#endif
}

typedef struct {
    PyObject *raise_not_callable;
    PyObject *await_with_store;
    PyObject *run_coroutine_in;
} helpers;

/* Strong references to the helpers of the module that defined `type`, or -1 with an error. */
static int
load_helpers(PyTypeObject *type, helpers *h)
{
    PyObject *module = module_of(type);
    if (module == NULL) {
        return -1;
    }
    module_state *st = get_state(module);
    AL_BEGIN_CRITICAL_SECTION(module);
    h->raise_not_callable = Py_XNewRef(st->raise_not_callable);
    h->await_with_store = Py_XNewRef(st->await_with_store);
    h->run_coroutine_in = Py_XNewRef(st->run_coroutine_in);
    AL_END_CRITICAL_SECTION();
    if (h->raise_not_callable == NULL || h->await_with_store == NULL
        || h->run_coroutine_in == NULL) {
        Py_CLEAR(h->raise_not_callable);
        Py_CLEAR(h->await_with_store);
        Py_CLEAR(h->run_coroutine_in);
        PyErr_SetString(PyExc_RuntimeError,
                        "asynclocal._speedups is used before asynclocal._storage set its "
                        "helpers; import asynclocal instead of asynclocal._speedups");
        return -1;
    }
    return 0;
}

static void
release_helpers(helpers *h)
{
    Py_CLEAR(h->raise_not_callable);
    Py_CLEAR(h->await_with_store);
    Py_CLEAR(h->run_coroutine_in);
}

static PyObject *
set_helpers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "_set_helpers(raise_not_callable, await_with_store, run_coroutine_in)");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 3; i++) {
        if (!PyCallable_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "_set_helpers() expects three callables");
            return NULL;
        }
    }
    module_state *st = get_state(module);
    PyObject *old[3];
    AL_BEGIN_CRITICAL_SECTION(module);
    old[0] = st->raise_not_callable;
    old[1] = st->await_with_store;
    old[2] = st->run_coroutine_in;
    st->raise_not_callable = Py_NewRef(args[0]);
    st->await_with_store = Py_NewRef(args[1]);
    st->run_coroutine_in = Py_NewRef(args[2]);
    AL_END_CRITICAL_SECTION();
    /* Released outside the lock: a finaliser may run. */
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(old[i]);
    }
    Py_RETURN_NONE;
}

/* fn raised TypeError: if fn is not callable, replace it with the helpful
 * message (the check costs nothing on the success path). */
static void
explain_type_error(PyTypeObject *type, const char *method, PyObject *fn)
{
    if (!PyErr_ExceptionMatches(PyExc_TypeError) || PyCallable_Check(fn)) {
        return;
    }
    PyErr_Clear();
    helpers h;
    if (load_helpers(type, &h) < 0) {
        PyErr_Clear();
    }
    else {
        PyObject *name = PyUnicode_FromString(method);
        if (name == NULL) {
            release_helpers(&h);
            return;
        }
        PyObject *res = PyObject_CallFunctionObjArgs(h.raise_not_callable, name, fn, NULL);
        Py_DECREF(name);
        Py_XDECREF(res);
        release_helpers(&h);
    }
    if (!PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "expected a callable as fn, got %.200s",
                     Py_TYPE(fn)->tp_name);
    }
}

/* Reset `token` while keeping the exception that is propagating, if any. */
static int
reset_keeping_error(PyObject *var, PyObject *token)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
    int rc = PyContextVar_Reset(var, token);
    if (exc != NULL) {
        if (rc < 0) {
            PyErr_Clear();  /* the callee's exception wins, as it is the one to report */
        }
        PyErr_SetRaisedException(exc);
    }
    return rc;
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    int rc = PyContextVar_Reset(var, token);
    if (type != NULL) {
        if (rc < 0) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, tb);
    }
    return rc;
#endif
}

/* -- StorageBase -------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *var;      /* the ContextVar; replaced by _set_var() (disable) */
    PyObject *default_; /* what get_store() returns where no store is set */
} StorageBase;

static int
storage_ready(PyObject *self, PyObject *var, PyObject *dflt)
{
    if (var == NULL || dflt == NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "%.200s was not initialised: call its __init__ (super().__init__(...) in a "
                     "subclass)", Py_TYPE(self)->tp_name);
        return 0;
    }
    return 1;
}

/* Strong references to var and default_ (either may be NULL before __init__).
 * Taken under the object's critical section, so a concurrent _set_var() or
 * `_default` assignment can never free what was just read. */
static inline void
load_fields(StorageBase *self, PyObject **var, PyObject **dflt)
{
    AL_BEGIN_CRITICAL_SECTION(self);
    *var = Py_XNewRef(self->var);
    *dflt = Py_XNewRef(self->default_);
    AL_END_CRITICAL_SECTION();
}

static PyObject *
storage_get_store(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    StorageBase *self = (StorageBase *)op;
    PyObject *value;
#ifdef Py_GIL_DISABLED
    PyObject *var, *dflt;
    load_fields(self, &var, &dflt);
    if (var == NULL) {
        Py_XDECREF(dflt);
        storage_ready(op, NULL, NULL);
        return NULL;
    }
    int rc = PyContextVar_Get(var, dflt, &value);
    Py_DECREF(var);
    Py_XDECREF(dflt);
    if (rc < 0) {
        return NULL;
    }
#else
    /* With a GIL the fields cannot change under us: PyContextVar_Get runs no
     * Python code (a HAMT lookup keyed by identity), so borrowed reads are safe. */
    if (self->var == NULL) {
        storage_ready(op, NULL, NULL);
        return NULL;
    }
    if (PyContextVar_Get(self->var, self->default_, &value) < 0) {
        return NULL;
    }
#endif
    if (value == NULL) {  /* no value and no default: only before __init__ set _default */
        Py_RETURN_NONE;
    }
    return value;
}

/* Set var to value, call fn(*args, **kwargs), reset; wrap a coroutine result.
 * Steals the references to var, value and dflt. */
static PyObject *
run_with(PyObject *self, const char *method, PyObject *var, PyObject *value, PyObject *dflt,
         PyObject *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* Own references: fn may call disable() (replacing self->var) or rebind _default. */
    PyObject *res = NULL;
    PyObject *token = PyContextVar_Set(var, value);
    if (token == NULL) {
        goto done;
    }
    res = PyObject_Vectorcall(fn, args, nargs, kwnames);
    if (res == NULL) {
        explain_type_error(Py_TYPE(self), method, fn);
        reset_keeping_error(var, token);
    }
    else if (PyContextVar_Reset(var, token) < 0) {
        Py_CLEAR(res);
    }
    Py_DECREF(token);
    if (res != NULL && PyCoro_CheckExact(res)) {
        /* async def: the returned coroutine sets the store again while it runs. */
        PyObject *coro = res;
        helpers h;
        res = NULL;
        if (load_helpers(Py_TYPE(self), &h) == 0) {
            res = PyObject_CallFunctionObjArgs(h.await_with_store, var, value, dflt, coro, NULL);
            release_helpers(&h);
        }
        Py_DECREF(coro);
    }
done:
    Py_DECREF(value);
    Py_DECREF(var);
    Py_DECREF(dflt);
    return res;
}

static PyObject *
storage_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "AsyncLocalStorage.run() expected at least 2 positional arguments "
                     "(store, fn), got %zd; call it as als.run(store, fn, *args, **kwargs)",
                     nargs);
        return NULL;
    }
    PyObject *var, *dflt;
    load_fields((StorageBase *)self, &var, &dflt);
    if (!storage_ready(self, var, dflt)) {
        Py_XDECREF(var);
        Py_XDECREF(dflt);
        return NULL;
    }
    return run_with(self, "run", var, Py_NewRef(args[0]), dflt, args[1], args + 2, nargs - 2,
                    kwnames);
}

static PyObject *
storage_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "AsyncLocalStorage.exit() expected a callable as fn; call it as "
                        "als.exit(fn, *args, **kwargs)");
        return NULL;
    }
    PyObject *var, *dflt;
    load_fields((StorageBase *)self, &var, &dflt);
    if (!storage_ready(self, var, dflt)) {
        Py_XDECREF(var);
        Py_XDECREF(dflt);
        return NULL;
    }
    return run_with(self, "exit", var, Py_NewRef(dflt), dflt, args[0], args + 1, nargs - 1,
                    kwnames);
}

static PyObject *
storage_set_var(PyObject *op, PyObject *var)
{
    StorageBase *self = (StorageBase *)op;
    if (!PyContextVar_CheckExact(var)) {
        PyErr_Format(PyExc_TypeError, "_set_var() expects a contextvars.ContextVar, got %.200s",
                     Py_TYPE(var)->tp_name);
        return NULL;
    }
    PyObject *old;
    AL_BEGIN_CRITICAL_SECTION(op);
    old = self->var;
    self->var = Py_NewRef(var);
    AL_END_CRITICAL_SECTION();
    /* Released outside the critical section; readers hold their own references. */
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyObject *
storage_get_var(PyObject *op, void *Py_UNUSED(closure))
{
    StorageBase *self = (StorageBase *)op;
    PyObject *var;
    AL_BEGIN_CRITICAL_SECTION(op);
    var = Py_XNewRef(self->var);
    AL_END_CRITICAL_SECTION();
    if (var == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_var");
    }
    return var;
}

static PyObject *
storage_get_default(PyObject *op, void *Py_UNUSED(closure))
{
    StorageBase *self = (StorageBase *)op;
    PyObject *dflt;
    AL_BEGIN_CRITICAL_SECTION(op);
    dflt = Py_XNewRef(self->default_);
    AL_END_CRITICAL_SECTION();
    if (dflt == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_default");
    }
    return dflt;
}

static int
storage_set_default(PyObject *op, PyObject *value, void *Py_UNUSED(closure))
{
    StorageBase *self = (StorageBase *)op;
    PyObject *old;
    AL_BEGIN_CRITICAL_SECTION(op);
    old = self->default_;
    self->default_ = Py_XNewRef(value);  /* NULL: `del als._default` */
    AL_END_CRITICAL_SECTION();
    if (value == NULL && old == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_default");
        return -1;
    }
    Py_XDECREF(old);
    return 0;
}

static int
storage_traverse(PyObject *op, visitproc visit, void *arg)
{
    StorageBase *self = (StorageBase *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->var);
    Py_VISIT(self->default_);
    return 0;
}

static int
storage_clear(PyObject *op)
{
    StorageBase *self = (StorageBase *)op;
    Py_CLEAR(self->var);
    Py_CLEAR(self->default_);
    return 0;
}

static void
storage_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    storage_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

PyDoc_STRVAR(get_store_doc,
"get_store($self, /)\n--\n\n"
"Return the store visible in the current context, or `default` when none is.");

PyDoc_STRVAR(run_doc,
"run($self, store, fn, /, *args, **kwargs)\n--\n\n"
"Call `fn(*args, **kwargs)` with `store` visible, then restore the previous store.\n\n"
"The previous store of this instance is restored when `fn` returns or raises (the\n"
"exception propagates unchanged); other instances are left as `fn` left them, as in\n"
"Node 24. If `fn` returns a coroutine, the result is a coroutine that runs it with\n"
"`store` visible, whether it is awaited or passed to `asyncio.create_task`.\n\n"
"Raises:\n    TypeError: `fn` is not callable.");

PyDoc_STRVAR(exit_doc,
"exit($self, fn, /, *args, **kwargs)\n--\n\n"
"Call `fn(*args, **kwargs)` seeing `default`, then restore the previous store.\n\n"
"A coroutine result is handled as in `run`.\n\n"
"Raises:\n    TypeError: `fn` is not callable.");

static PyMethodDef storage_methods[] = {
    {"get_store", (PyCFunction)storage_get_store, METH_NOARGS, get_store_doc},
    {"run", (PyCFunction)(void (*)(void))storage_run, METH_FASTCALL | METH_KEYWORDS, run_doc},
    {"exit", (PyCFunction)(void (*)(void))storage_exit, METH_FASTCALL | METH_KEYWORDS, exit_doc},
    {"_set_var", (PyCFunction)storage_set_var, METH_O,
     "Make `var` the ContextVar backing the storage (used by __init__ and disable())."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef storage_getset[] = {
    {"_var", storage_get_var, NULL,
     "The ContextVar backing the storage; replaced by disable().", NULL},
    {"_default", storage_get_default, storage_set_default,
     "What get_store() returns where no store is set.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot storage_slots[] = {
    {Py_tp_doc, "The fast paths of AsyncLocalStorage: its ContextVar, default, get_store, run, "
                "exit."},
    {Py_tp_dealloc, storage_dealloc},
    {Py_tp_traverse, storage_traverse},
    {Py_tp_clear, storage_clear},
    {Py_tp_methods, storage_methods},
    {Py_tp_getset, storage_getset},
    {Py_tp_new, PyType_GenericNew},
    {0, NULL},
};

static PyType_Spec storage_spec = {
    .name = "asynclocal._speedups.StorageBase",
    .basicsize = sizeof(StorageBase),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = storage_slots,
};

/* -- ContextRunner ----------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *ctx;         /* the captured Context, never entered itself; immutable */
    PyObject *fn;          /* the bound callable, or NULL for a snapshot runner; immutable */
    PyObject *dict;        /* __wrapped__, __name__, __doc__... (functools.update_wrapper) */
    PyObject *weakreflist;
    vectorcallfunc vectorcall;
} ContextRunner;

/* Call fn in a fresh copy of ctx; a coroutine result runs wholly in another copy. */
static PyObject *
call_in_copy(PyObject *self, PyObject *ctx, PyObject *fn, PyObject *const *args, size_t nargsf,
             PyObject *kwnames, int explain)
{
    PyObject *copy = PyContext_Copy(ctx);
    if (copy == NULL) {
        return NULL;
    }
    if (PyContext_Enter(copy) < 0) {
        Py_DECREF(copy);
        return NULL;
    }
    PyObject *res = PyObject_Vectorcall(fn, args, nargsf, kwnames);
    if (res == NULL && explain && PyErr_ExceptionMatches(PyExc_TypeError)
        && !PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError,
                     "snapshot runner expected a callable as fn, got %.200s; call it as "
                     "runner(fn, *args, **kwargs)", Py_TYPE(fn)->tp_name);
    }
    if (PyContext_Exit(copy) < 0) {
        Py_CLEAR(res);
    }
    Py_DECREF(copy);
    if (res != NULL && PyCoro_CheckExact(res)) {
        PyObject *coro = res;
        helpers h;
        res = NULL;
        if (load_helpers(Py_TYPE(self), &h) == 0) {
            if ((copy = PyContext_Copy(ctx)) != NULL) {
                res = PyObject_CallFunctionObjArgs(h.run_coroutine_in, copy, coro, NULL);
                Py_DECREF(copy);
            }
            release_helpers(&h);
        }
        Py_DECREF(coro);
    }
    return res;
}

static PyObject *
runner_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ContextRunner *self = (ContextRunner *)op;
    if (self->fn != NULL) {
        return call_in_copy(op, self->ctx, self->fn, args, nargsf, kwnames, 0);
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "snapshot runner expected a callable as fn; call it as "
                        "runner(fn, *args, **kwargs)");
        return NULL;
    }
    return call_in_copy(op, self->ctx, args[0], args + 1, nargs - 1, kwnames, 1);
}

static PyObject *
runner_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"ctx", "fn", NULL};
    PyObject *ctx, *fn = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:ContextRunner", kwlist, &ctx, &fn)) {
        return NULL;
    }
    if (!PyContext_CheckExact(ctx)) {
        PyErr_Format(PyExc_TypeError, "ContextRunner(ctx) expects a contextvars.Context, got %.200s",
                     Py_TYPE(ctx)->tp_name);
        return NULL;
    }
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "ContextRunner(ctx, fn) expects a callable fn, got %.200s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    ContextRunner *self = (ContextRunner *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->ctx = Py_NewRef(ctx);
    self->fn = fn == Py_None ? NULL : Py_NewRef(fn);
    self->vectorcall = runner_vectorcall;
    return (PyObject *)self;
}

static PyObject *
runner_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    /* Like a function: stored on a class, it binds the instance. */
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
runner_repr(PyObject *op)
{
    ContextRunner *self = (ContextRunner *)op;
    if (self->fn == NULL) {
        return PyUnicode_FromFormat("<asynclocal snapshot runner at %p>", op);
    }
    return PyUnicode_FromFormat("<asynclocal bound %R>", self->fn);
}

static int
runner_traverse(PyObject *op, visitproc visit, void *arg)
{
    ContextRunner *self = (ContextRunner *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->ctx);
    Py_VISIT(self->fn);
    Py_VISIT(self->dict);
    return 0;
}

static int
runner_clear(PyObject *op)
{
    ContextRunner *self = (ContextRunner *)op;
    Py_CLEAR(self->ctx);
    Py_CLEAR(self->fn);
    Py_CLEAR(self->dict);
    return 0;
}

static void
runner_dealloc(PyObject *op)
{
    ContextRunner *self = (ContextRunner *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    runner_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
runner_get_ctx(PyObject *op, void *Py_UNUSED(closure))
{
    ContextRunner *self = (ContextRunner *)op;
    if (self->ctx == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(self->ctx);
}

static PyObject *
runner_get_fn(PyObject *op, void *Py_UNUSED(closure))
{
    ContextRunner *self = (ContextRunner *)op;
    if (self->fn == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(self->fn);
}

static PyGetSetDef runner_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"context", runner_get_ctx, NULL,
     "The captured Context (each call runs in a fresh copy of it).", NULL},
    {"__self__", runner_get_ctx, NULL,
     "The captured Context, as for `ctx.run` (diagnostics look for it).", NULL},
    {"func", runner_get_fn, NULL, "The bound callable, or None for a snapshot runner.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef runner_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(ContextRunner, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ContextRunner, weakreflist), READONLY, NULL},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ContextRunner, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot runner_slots[] = {
    {Py_tp_doc, "ContextRunner(ctx, fn=None): call in a fresh copy of ctx each time.\n\n"
                "Without fn, runner(fn, *args, **kwargs) (a snapshot); with fn,\n"
                "runner(*args, **kwargs) (a bound callable). A coroutine result is a\n"
                "coroutine whose whole body runs in a fresh copy of ctx."},
    {Py_tp_dealloc, runner_dealloc},
    {Py_tp_repr, runner_repr},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_traverse, runner_traverse},
    {Py_tp_clear, runner_clear},
    {Py_tp_getset, runner_getset},
    {Py_tp_members, runner_members},
    {Py_tp_descr_get, runner_descr_get},
    {Py_tp_new, runner_new},
    {0, NULL},
};

static PyType_Spec runner_spec = {
    .name = "asynclocal._speedups.ContextRunner",
    .basicsize = sizeof(ContextRunner),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = runner_slots,
};

/* -- per-class method descriptors -------------------------------------------- */

/* CPython's specialised method calls (3.11-3.13) check that the instance's type
 * is *exactly* the descriptor's type, so a method inherited from StorageBase is
 * called through the generic path on every AsyncLocalStorage. A descriptor made
 * for the subclass itself takes the fast path, as `var.get()` does. */
static PyObject *
method_descriptors(PyObject *module, PyObject *cls)
{
    module_state *st = get_state(module);
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, st->storage_type)) {
        PyErr_SetString(PyExc_TypeError, "_method_descriptors() expects a StorageBase subclass");
        return NULL;
    }
    PyObject *result = PyDict_New();
    if (result == NULL) {
        return NULL;
    }
    for (PyMethodDef *def = storage_methods; def->ml_name != NULL; def++) {
        if (def->ml_name[0] == '_') {
            continue;
        }
        PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, def);
        if (descr == NULL || PyDict_SetItemString(result, def->ml_name, descr) < 0) {
            Py_XDECREF(descr);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(descr);
    }
    return result;
}

/* -- module ------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"_set_helpers", (PyCFunction)(void (*)(void))set_helpers, METH_FASTCALL,
     "_set_helpers(raise_not_callable, await_with_store, run_coroutine_in): the slow paths."},
    {"_method_descriptors", (PyCFunction)method_descriptors, METH_O,
     "_method_descriptors(cls): {name: descriptor} of get_store/run/exit made for cls."},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    module_state *st = get_state(module);
    st->storage_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &storage_spec, NULL);
    if (st->storage_type == NULL || PyModule_AddType(module, st->storage_type) < 0) {
        return -1;
    }
    st->runner_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &runner_spec, NULL);
    if (st->runner_type == NULL || PyModule_AddType(module, st->runner_type) < 0) {
        return -1;
    }
    return 0;
}

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = get_state(module);
    Py_VISIT(st->storage_type);
    Py_VISIT(st->runner_type);
    Py_VISIT(st->raise_not_callable);
    Py_VISIT(st->await_with_store);
    Py_VISIT(st->run_coroutine_in);
    return 0;
}

static int
speedups_clear(PyObject *module)
{
    module_state *st = get_state(module);
    Py_CLEAR(st->storage_type);
    Py_CLEAR(st->runner_type);
    Py_CLEAR(st->raise_not_callable);
    Py_CLEAR(st->await_with_store);
    Py_CLEAR(st->run_coroutine_in);
    return 0;
}

static void
speedups_free(void *module)
{
    speedups_clear((PyObject *)module);
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* All state lives in the module object: each interpreter, with its own GIL too. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* Free-threaded builds: safe without the GIL (see the critical sections above). */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "asynclocal._speedups",
    .m_doc = "Optional C accelerator for asynclocal's core (see asynclocal._fallback).",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = speedups_slots,
    .m_traverse = speedups_traverse,
    .m_clear = speedups_clear,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
