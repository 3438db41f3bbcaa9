// CUDA graph capture / replay for Peft.Core (Torch/CudaGraph.cs) through libtorch's own at::cuda::CUDAGraph.
//
// TorchSharp exposes no CUDA graphs or streams. libtorch exports at::cuda::CUDAGraph and the c10::cuda stream
// functions as C++ symbols; this shim finds them in the libtorch_cuda.so / libc10_cuda.so that the process has
// already loaded (it never loads a libtorch of its own), calls them through typed function pointers and turns
// every C++ exception into an error code and message: no exception may unwind into .NET.
//
// No torch headers: the types crossing the boundary are plain layouts of the libtorch 2.x ABI (x86-64 SysV):
//   c10::cuda::CUDAStream = c10::Stream = { int8 device type, int8 device index, int64 stream id }: 16 bytes,
//     trivially copyable, so passed and returned in two registers, as the struct below is;
//   MempoolId_t = std::pair<unsigned long long, unsigned long long> (trivially copyable, two registers);
//   cudaStreamCaptureMode is an int enum (0 global, 1 thread-local, 2 relaxed).
// The CUDAGraph object is a few hundred bytes; it is placement-constructed in a 4 KiB, 64-byte aligned block.

#include <dlfcn.h>
#include <link.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>

namespace {

struct CudaStream {
    int8_t type;
    int8_t index;
    int64_t id;
};

struct MempoolId {
    unsigned long long first;
    unsigned long long second;
};

constexpr size_t kGraphBytes = 4096;
constexpr int kCaptureModeThreadLocal = 1;   // other threads (the .NET finalizer) may call CUDA while we capture

using GraphCtor = void (*)(void* self, bool keep_graph);
using GraphDtor = void (*)(void* self);
using GraphCaptureBegin = void (*)(void* self, MempoolId pool, int mode);
using GraphMethod = void (*)(void* self);
using StreamFromPool = CudaStream (*)(bool high_priority, int8_t device);
using CurrentStream = CudaStream (*)(int8_t device);
using SetCurrentStream = void (*)(CudaStream stream);
using StreamHandle = void* (*)(const CudaStream* self);   // c10::cuda::CUDAStream::stream() const -> cudaStream_t

struct Api {
    GraphCtor ctor = nullptr;
    GraphDtor dtor = nullptr;
    GraphCaptureBegin capture_begin = nullptr;
    GraphMethod capture_end = nullptr;
    GraphMethod replay = nullptr;
    StreamFromPool stream_from_pool = nullptr;
    CurrentStream current_stream = nullptr;
    SetCurrentStream set_current_stream = nullptr;
    bool resolved = false;
    char error[512] = {0};
};

Api g_api;

// The two symbols the fused kernels (Torch/Cuda/FusedKernels.cs) need, bound apart from the graph API so that a
// libtorch lacking a graph symbol still lends its current stream.
struct StreamApi {
    CurrentStream current_stream = nullptr;
    StreamHandle handle = nullptr;
    bool resolved = false;
    char error[512] = {0};
};

StreamApi g_stream;

struct Graph {
    alignas(64) unsigned char object[kGraphBytes];
    bool constructed = false;
    bool on_side = false;          // the side stream is the current stream (saved holds the previous one)
    bool capturing = false;
    bool has_side = false;
    CudaStream side{};
    CudaStream saved{};
    int8_t device = 0;
};

void put(char* err, int n, const char* msg) {
    if (err == nullptr || n <= 0) return;
    std::snprintf(err, static_cast<size_t>(n), "%s", msg);
}

// The path of an already-loaded library whose file name is `name` (dl_iterate_phdr), or empty.
struct Found {
    const char* name;
    char path[1024];
};

int find_loaded(struct dl_phdr_info* info, size_t, void* data) {
    auto* f = static_cast<Found*>(data);
    const char* p = info->dlpi_name;
    if (p == nullptr || *p == 0) return 0;
    const char* slash = std::strrchr(p, '/');
    const char* base = slash ? slash + 1 : p;
    if (std::strcmp(base, f->name) != 0) return 0;
    std::snprintf(f->path, sizeof f->path, "%s", p);
    return 1;
}

// A handle to the loaded library `name` without loading anything new: RTLD_NOLOAD by name, then by the path of a
// loaded object with that file name.
void* open_loaded(const char* name) {
    void* h = dlopen(name, RTLD_NOLOAD | RTLD_LAZY);
    if (h != nullptr) return h;
    Found f{name, {0}};
    if (dl_iterate_phdr(find_loaded, &f) != 0 && f.path[0] != 0) h = dlopen(f.path, RTLD_NOLOAD | RTLD_LAZY);
    return h;
}

template <typename F>
bool bind(void* lib, const char* libname, const char* symbol, F& out) {
    void* p = dlsym(lib, symbol);
    if (p == nullptr) {
        std::snprintf(g_api.error, sizeof g_api.error, "unavailable: %s does not export %s (another libtorch version?)", libname, symbol);
        return false;
    }
    out = reinterpret_cast<F>(p);
    return true;
}

bool resolve() {
    if (g_api.resolved) return true;
    void* torch_cuda = open_loaded("libtorch_cuda.so");
    if (torch_cuda == nullptr) {
        std::snprintf(g_api.error, sizeof g_api.error, "unavailable: libtorch_cuda.so is not loaded in this process (CPU-only libtorch, or CUDA not initialised)");
        return false;
    }
    void* c10_cuda = open_loaded("libc10_cuda.so");
    if (c10_cuda == nullptr) {
        std::snprintf(g_api.error, sizeof g_api.error, "unavailable: libc10_cuda.so is not loaded in this process");
        return false;
    }
    bool ok = bind(torch_cuda, "libtorch_cuda.so", "_ZN2at4cuda9CUDAGraphC1Eb", g_api.ctor)
        && bind(torch_cuda, "libtorch_cuda.so", "_ZN2at4cuda9CUDAGraphD1Ev", g_api.dtor)
        && bind(torch_cuda, "libtorch_cuda.so", "_ZN2at4cuda9CUDAGraph13capture_beginESt4pairIyyE21cudaStreamCaptureMode", g_api.capture_begin)
        && bind(torch_cuda, "libtorch_cuda.so", "_ZN2at4cuda9CUDAGraph11capture_endEv", g_api.capture_end)
        && bind(torch_cuda, "libtorch_cuda.so", "_ZN2at4cuda9CUDAGraph6replayEv", g_api.replay)
        && bind(c10_cuda, "libc10_cuda.so", "_ZN3c104cuda17getStreamFromPoolEba", g_api.stream_from_pool)
        && bind(c10_cuda, "libc10_cuda.so", "_ZN3c104cuda20getCurrentCUDAStreamEa", g_api.current_stream)
        && bind(c10_cuda, "libc10_cuda.so", "_ZN3c104cuda20setCurrentCUDAStreamENS0_10CUDAStreamE", g_api.set_current_stream);
    g_api.resolved = ok;
    return ok;
}

// Runs f, turning any C++ exception into -1 and a message.
template <typename F>
int guarded(char* err, int n, const char* what, F f) {
    try {
        f();
        return 0;
    } catch (const std::exception& e) {
        char msg[2048];
        std::snprintf(msg, sizeof msg, "%s: %s", what, e.what());
        put(err, n, msg);
    } catch (...) {
        char msg[256];
        std::snprintf(msg, sizeof msg, "%s: unknown C++ exception", what);
        put(err, n, msg);
    }
    return -1;
}

bool resolve_stream() {
    if (g_stream.resolved) return true;
    void* c10_cuda = open_loaded("libc10_cuda.so");
    if (c10_cuda == nullptr) {
        std::snprintf(g_stream.error, sizeof g_stream.error, "unavailable: libc10_cuda.so is not loaded in this process (CPU-only libtorch, or CUDA not initialised)");
        return false;
    }
    const char* names[2] = {"_ZN3c104cuda20getCurrentCUDAStreamEa", "_ZNK3c104cuda10CUDAStream6streamEv"};
    void* found[2] = {dlsym(c10_cuda, names[0]), dlsym(c10_cuda, names[1])};
    for (int i = 0; i < 2; i++) {
        if (found[i] == nullptr) {
            std::snprintf(g_stream.error, sizeof g_stream.error, "unavailable: libc10_cuda.so does not export %s (another libtorch version?)", names[i]);
            return false;
        }
    }
    g_stream.current_stream = reinterpret_cast<CurrentStream>(found[0]);
    g_stream.handle = reinterpret_cast<StreamHandle>(found[1]);
    g_stream.resolved = true;
    return true;
}

int leave_side(Graph* g, char* err, int n) {
    if (!g->on_side) return 0;
    int rc = guarded(err, n, "setCurrentCUDAStream (restore)", [&] { g_api.set_current_stream(g->saved); });
    if (rc == 0) g->on_side = false;
    return rc;
}

}  // namespace

extern "C" {

// 1 when every symbol resolved in the loaded libtorch; 0 with "unavailable: ..." in err otherwise.
__attribute__((visibility("default"))) int peft_graph_available(char* err, int n) {
    if (resolve()) return 1;
    put(err, n, g_api.error);
    return 0;
}

// The cudaStream_t of torch's current stream on `device` (c10::cuda::getCurrentCUDAStream(device).stream()) into
// *out; 0 on success, -1 with a message ("unavailable: ..." when the symbols are missing).
__attribute__((visibility("default"))) int peft_cuda_current_stream(int device, void** out, char* err, int n) {
    if (out == nullptr) { put(err, n, "null output"); return -1; }
    if (!resolve_stream()) {
        put(err, n, g_stream.error);
        return -1;
    }
    return guarded(err, n, "getCurrentCUDAStream", [&] {
        CudaStream s = g_stream.current_stream(static_cast<int8_t>(device));
        *out = g_stream.handle(&s);
    });
}

// A new, empty graph (at::cuda::CUDAGraph(keep_graph = false)); null with a message on failure.
__attribute__((visibility("default"))) void* peft_graph_new(char* err, int n) {
    if (!resolve()) {
        put(err, n, g_api.error);
        return nullptr;
    }
    void* mem = std::aligned_alloc(64, sizeof(Graph));
    if (mem == nullptr) {
        put(err, n, "out of host memory");
        return nullptr;
    }
    auto* g = new (mem) Graph();
    if (guarded(err, n, "CUDAGraph()", [&] { g_api.ctor(g->object, false); }) != 0) {
        g->~Graph();
        std::free(mem);
        return nullptr;
    }
    g->constructed = true;
    return g;
}

// Makes a side stream from libtorch's pool (made once per graph) the current stream of `device`, saving the current one.
__attribute__((visibility("default"))) int peft_graph_enter(void* handle, int device, char* err, int n) {
    auto* g = static_cast<Graph*>(handle);
    if (g == nullptr) { put(err, n, "null graph"); return -1; }
    if (g->on_side) return 0;
    return guarded(err, n, "side stream", [&] {
        auto dev = static_cast<int8_t>(device);
        if (!g->has_side) {
            g->side = g_api.stream_from_pool(false, dev);
            g->has_side = true;
            g->device = dev;
        }
        g->saved = g_api.current_stream(g->device);
        g_api.set_current_stream(g->side);
        g->on_side = true;
    });
}

// Restores the stream that was current before peft_graph_enter.
__attribute__((visibility("default"))) int peft_graph_exit(void* handle, char* err, int n) {
    auto* g = static_cast<Graph*>(handle);
    if (g == nullptr) { put(err, n, "null graph"); return -1; }
    return leave_side(g, err, n);
}

// Side stream current, then capture_begin (private memory pool, thread-local capture mode). On failure the previous
// stream is restored.
__attribute__((visibility("default"))) int peft_graph_begin(void* handle, int device, char* err, int n) {
    auto* g = static_cast<Graph*>(handle);
    if (g == nullptr) { put(err, n, "null graph"); return -1; }
    int rc = peft_graph_enter(handle, device, err, n);
    if (rc != 0) return rc;
    rc = guarded(err, n, "CUDAGraph::capture_begin", [&] { g_api.capture_begin(g->object, MempoolId{0, 0}, kCaptureModeThreadLocal); });
    if (rc != 0) {
        leave_side(g, nullptr, 0);
        return rc;
    }
    g->capturing = true;
    return 0;
}

// capture_end (instantiates the graph), then restores the previous stream, also when capture_end failed.
__attribute__((visibility("default"))) int peft_graph_end(void* handle, char* err, int n) {
    auto* g = static_cast<Graph*>(handle);
    if (g == nullptr) { put(err, n, "null graph"); return -1; }
    int rc = 0;
    if (g->capturing) {
        rc = guarded(err, n, "CUDAGraph::capture_end", [&] { g_api.capture_end(g->object); });
        g->capturing = false;
    }
    int restore = rc == 0 ? leave_side(g, err, n) : leave_side(g, nullptr, 0);
    return rc != 0 ? rc : restore;
}

// Replays the captured work on the current stream.
__attribute__((visibility("default"))) int peft_graph_replay(void* handle, char* err, int n) {
    auto* g = static_cast<Graph*>(handle);
    if (g == nullptr) { put(err, n, "null graph"); return -1; }
    return guarded(err, n, "CUDAGraph::replay", [&] { g_api.replay(g->object); });
}

// Ends a capture left open, restores the stream, destroys the graph (its private memory pool goes back to libtorch).
__attribute__((visibility("default"))) void peft_graph_free(void* handle) {
    auto* g = static_cast<Graph*>(handle);
    if (g == nullptr) return;
    if (g->capturing) {
        guarded(nullptr, 0, "capture_end", [&] { g_api.capture_end(g->object); });
        g->capturing = false;
    }
    leave_side(g, nullptr, 0);
    if (g->constructed) guarded(nullptr, 0, "~CUDAGraph", [&] { g_api.dtor(g->object); });
    g->~Graph();
    std::free(g);
}

}  // extern "C"
