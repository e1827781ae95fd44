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
 * C API of CPython 3.10-3.13.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"

/* -- helpers registered from Python (slow paths only) ---------------------- */

static PyObject *raise_not_callable = NULL;  /* (method: str, fn) -> raises */
static PyObject *await_with_store = NULL;    /* (var, store, default, coro) -> coro */
static PyObject *run_coroutine_in = NULL;    /* (ctx, coro) -> coro */

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
    Py_XSETREF(raise_not_callable, Py_NewRef(args[0]));
    Py_XSETREF(await_with_store, Py_NewRef(args[1]));
    Py_XSETREF(run_coroutine_in, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

static int
helpers_ready(void)
{
    if (raise_not_callable == NULL || await_with_store == NULL || run_coroutine_in == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "asynclocal._speedups is used before asynclocal._storage set its "
                        "helpers; import asynclocal instead of asynclocal._speedups");
        return 0;
    }
    return 1;
}

/* fn raised TypeError: if fn is not callable, replace it with the helpful
 * message (the check costs nothing on the success path). */
static void
explain_type_error(const char *method, PyObject *fn)
{
    if (!PyErr_ExceptionMatches(PyExc_TypeError) || PyCallable_Check(fn)) {
        return;
    }
    if (!helpers_ready()) {
        return;
    }
    PyErr_Clear();
    PyObject *name = PyUnicode_FromString(method);
    if (name == NULL) {
        return;
    }
    PyObject *res = PyObject_CallFunctionObjArgs(raise_not_callable, name, fn, NULL);
    Py_DECREF(name);
    Py_XDECREF(res);
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

static PyTypeObject StorageBase_Type;

static int
storage_ready(StorageBase *self)
{
    if (self->var == NULL || self->default_ == NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "%.200s was not initialised: call its __init__ (super().__init__(...) in a "
                     "subclass)", Py_TYPE(self)->tp_name);
        return 0;
    }
    return 1;
}

static PyObject *
storage_get_store(StorageBase *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *value;
    if (self->var == NULL) {
        storage_ready(self);
        return NULL;
    }
    if (PyContextVar_Get(self->var, self->default_, &value) < 0) {
        return NULL;
    }
    if (value == NULL) {  /* no value and no default: only before __init__ set _default */
        Py_RETURN_NONE;
    }
    return value;
}

/* Set var to value, call fn(*args, **kwargs), reset; wrap a coroutine result. */
static PyObject *
run_with(StorageBase *self, const char *method, PyObject *value, PyObject *fn,
         PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* Own references: fn may call disable() (replacing self->var) or rebind _default. */
    PyObject *var = Py_NewRef(self->var);
    Py_INCREF(value);
    PyObject *res = NULL;
    PyObject *token = PyContextVar_Set(var, value);
    if (token == NULL) {
        goto done;
    }
    res = PyObject_Vectorcall(fn, args, nargs, kwnames);
    if (res == NULL) {
        explain_type_error(method, fn);
        reset_keeping_error(var, token);
    }
    else if (PyContextVar_Reset(var, token) < 0) {
        Py_CLEAR(res);
    }
    Py_DECREF(token);
    if (res != NULL && PyCoro_CheckExact(res)) {
        /* async def: the returned coroutine sets the store again while it runs. */
        PyObject *coro = res;
        res = NULL;
        if (helpers_ready()) {
            PyObject *dflt = Py_NewRef(self->default_);
            res = PyObject_CallFunctionObjArgs(await_with_store, var, value, dflt, coro, NULL);
            Py_DECREF(dflt);
        }
        Py_DECREF(coro);
    }
done:
    Py_DECREF(value);
    Py_DECREF(var);
    return res;
}

static PyObject *
storage_run(StorageBase *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "AsyncLocalStorage.run() expected at least 2 positional arguments "
                     "(store, fn), got %zd; call it as als.run(store, fn, *args, **kwargs)",
                     nargs);
        return NULL;
    }
    if (!storage_ready(self)) {
        return NULL;
    }
    return run_with(self, "run", args[0], args[1], args + 2, nargs - 2, kwnames);
}

static PyObject *
storage_exit(StorageBase *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "AsyncLocalStorage.exit() expected a callable as fn; call it as "
                        "als.exit(fn, *args, **kwargs)");
        return NULL;
    }
    if (!storage_ready(self)) {
        return NULL;
    }
    return run_with(self, "exit", self->default_, args[0], args + 1, nargs - 1, kwnames);
}

static PyObject *
storage_set_var(StorageBase *self, PyObject *var)
{
    if (!PyContextVar_CheckExact(var)) {
        PyErr_Format(PyExc_TypeError, "_set_var() expects a contextvars.ContextVar, got %.200s",
                     Py_TYPE(var)->tp_name);
        return NULL;
    }
    Py_XSETREF(self->var, Py_NewRef(var));
    Py_RETURN_NONE;
}

static int
storage_traverse(StorageBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->var);
    Py_VISIT(self->default_);
    return 0;
}

static int
storage_clear(StorageBase *self)
{
    Py_CLEAR(self->var);
    Py_CLEAR(self->default_);
    return 0;
}

static void
storage_dealloc(StorageBase *self)
{
    PyObject_GC_UnTrack(self);
    storage_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
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

static PyMemberDef storage_members[] = {
    {"_var", T_OBJECT_EX, offsetof(StorageBase, var), READONLY,
     "The ContextVar backing the storage; replaced by disable()."},
    {"_default", T_OBJECT_EX, offsetof(StorageBase, default_), 0,
     "What get_store() returns where no store is set."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject StorageBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asynclocal._speedups.StorageBase",
    .tp_basicsize = sizeof(StorageBase),
    .tp_dealloc = (destructor)storage_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fast paths of AsyncLocalStorage: its ContextVar, default, get_store, run, exit.",
    .tp_traverse = (traverseproc)storage_traverse,
    .tp_clear = (inquiry)storage_clear,
    .tp_methods = storage_methods,
    .tp_members = storage_members,
    .tp_new = PyType_GenericNew,
};

/* -- ContextRunner ----------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *ctx;         /* the captured Context, never entered itself */
    PyObject *fn;          /* the bound callable, or NULL for a snapshot runner */
    PyObject *dict;        /* __wrapped__, __name__, __doc__... (functools.update_wrapper) */
    PyObject *weakreflist;
    vectorcallfunc vectorcall;
} ContextRunner;

static PyTypeObject ContextRunner_Type;

/* Call fn in a fresh copy of ctx; a coroutine result runs wholly in another copy. */
static PyObject *
call_in_copy(PyObject *ctx, PyObject *fn, PyObject *const *args, size_t nargsf,
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
        res = NULL;
        if (helpers_ready() && (copy = PyContext_Copy(ctx)) != NULL) {
            res = PyObject_CallFunctionObjArgs(run_coroutine_in, copy, coro, NULL);
            Py_DECREF(copy);
        }
        Py_DECREF(coro);
    }
    return res;
}

static PyObject *
runner_vectorcall(ContextRunner *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (self->fn != NULL) {
        return call_in_copy(self->ctx, self->fn, args, nargsf, kwnames, 0);
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "snapshot runner expected a callable as fn; call it as "
                        "runner(fn, *args, **kwargs)");
        return NULL;
    }
    return call_in_copy(self->ctx, args[0], args + 1, nargs - 1, kwnames, 1);
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
    self->vectorcall = (vectorcallfunc)runner_vectorcall;
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
runner_repr(ContextRunner *self)
{
    if (self->fn == NULL) {
        return PyUnicode_FromFormat("<asynclocal snapshot runner at %p>", self);
    }
    return PyUnicode_FromFormat("<asynclocal bound %R>", self->fn);
}

static int
runner_traverse(ContextRunner *self, visitproc visit, void *arg)
{
    Py_VISIT(self->ctx);
    Py_VISIT(self->fn);
    Py_VISIT(self->dict);
    return 0;
}

static int
runner_clear(ContextRunner *self)
{
    Py_CLEAR(self->ctx);
    Py_CLEAR(self->fn);
    Py_CLEAR(self->dict);
    return 0;
}

static void
runner_dealloc(ContextRunner *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    runner_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
runner_get_ctx(ContextRunner *self, void *Py_UNUSED(closure))
{
    if (self->ctx == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(self->ctx);
}

static PyObject *
runner_get_fn(ContextRunner *self, void *Py_UNUSED(closure))
{
    if (self->fn == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(self->fn);
}

static PyGetSetDef runner_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"context", (getter)runner_get_ctx, NULL,
     "The captured Context (each call runs in a fresh copy of it).", NULL},
    {"__self__", (getter)runner_get_ctx, NULL,
     "The captured Context, as for `ctx.run` (diagnostics look for it).", NULL},
    {"func", (getter)runner_get_fn, NULL, "The bound callable, or None for a snapshot runner.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ContextRunner_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "asynclocal._speedups.ContextRunner",
    .tp_basicsize = sizeof(ContextRunner),
    .tp_dealloc = (destructor)runner_dealloc,
    .tp_vectorcall_offset = offsetof(ContextRunner, vectorcall),
    .tp_repr = (reprfunc)runner_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "ContextRunner(ctx, fn=None): call in a fresh copy of ctx each time.\n\n"
              "Without fn, runner(fn, *args, **kwargs) (a snapshot); with fn,\n"
              "runner(*args, **kwargs) (a bound callable). A coroutine result is a\n"
              "coroutine whose whole body runs in a fresh copy of ctx.",
    .tp_traverse = (traverseproc)runner_traverse,
    .tp_clear = (inquiry)runner_clear,
    .tp_weaklistoffset = offsetof(ContextRunner, weakreflist),
    .tp_getset = runner_getset,
    .tp_descr_get = runner_descr_get,
    .tp_dictoffset = offsetof(ContextRunner, dict),
    .tp_new = runner_new,
};

/* -- per-class method descriptors -------------------------------------------- */

/* CPython's specialised method calls (3.11-3.13) check that the instance's type
 * is *exactly* the descriptor's type, so a method inherited from StorageBase is
 * called through the generic path on every AsyncLocalStorage. A descriptor made
 * for the subclass itself takes the fast path, as `var.get()` does. */
static PyObject *
method_descriptors(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &StorageBase_Type)) {
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

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "asynclocal._speedups",
    .m_doc = "Optional C accelerator for asynclocal's core (see asynclocal._fallback).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&StorageBase_Type) < 0 || PyType_Ready(&ContextRunner_Type) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&StorageBase_Type);
    if (PyModule_AddObject(m, "StorageBase", (PyObject *)&StorageBase_Type) < 0) {
        Py_DECREF(&StorageBase_Type);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ContextRunner_Type);
    if (PyModule_AddObject(m, "ContextRunner", (PyObject *)&ContextRunner_Type) < 0) {
        Py_DECREF(&ContextRunner_Type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
