/* fake_nvml.c: a minimal libnvidia-ml.so.1, so that tests run the real pynvml ctypes code without a GPU.
 *   gcc -shared -fPIC -O2 -o libnvidia-ml.so.1 fake_nvml.c
 * Extended from components.md §2. Behaviour is set by environment variables:
 *   read at nvmlInit:  FAKE_NVML_INIT_RC (0; 9 = DRIVER_NOT_LOADED)  FAKE_NVML_COUNT (1)
 *                      FAKE_NVML_POWER_MW (250000)  FAKE_NVML_PIDS (comma list, on GPU 0 only)
 *   read at each call: FAKE_NVML_ENERGY_UNSUPPORTED (0; 1 = pre-Volta NOT_SUPPORTED)
 *                      FAKE_NVML_LOST (0; 1 = every device call answers GPU_IS_LOST, as after an Xid)
 * energy_mJ = 1e6*(idx+1) + power_mW * seconds since nvmlInit (monotonic).
 * nvmlDeviceGetTemperatureV is deliberately absent: the caller must fall back to nvmlDeviceGetTemperature. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
typedef struct { int idx; } dev_t_;
typedef dev_t_ *nvmlDevice_t;
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
enum { OK = 0, UNINIT = 1, INVALID = 2, NOT_SUPPORTED = 3, INSUFFICIENT_SIZE = 7, GPU_IS_LOST = 15 };

static int inited = 0, count = 1;
static unsigned int power_mw = 250000;
static struct timespec t0;
static dev_t_ devs[8];
static unsigned int pids[64];
static unsigned int npids = 0;

static int envint(const char *n, int d) { const char *v = getenv(n); return v ? atoi(v) : d; }
/* the common preamble of every device call */
static nvmlReturn_t check(void) { if (!inited) return UNINIT; return envint("FAKE_NVML_LOST", 0) ? GPU_IS_LOST : OK; }
#define CHECK() do { nvmlReturn_t rc_ = check(); if (rc_) return rc_; } while (0)

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    int rc = envint("FAKE_NVML_INIT_RC", 0);
    if (rc) return rc;
    count = envint("FAKE_NVML_COUNT", 1);
    if (count > 8) count = 8;
    power_mw = (unsigned int)envint("FAKE_NVML_POWER_MW", 250000);
    npids = 0;
    const char *p = getenv("FAKE_NVML_PIDS");
    if (p && *p) {
        char buf[1024];
        strncpy(buf, p, sizeof buf - 1); buf[sizeof buf - 1] = 0;
        for (char *tok = strtok(buf, ","); tok && npids < 64; tok = strtok(NULL, ",")) pids[npids++] = (unsigned)atoi(tok);
    }
    for (int i = 0; i < 8; i++) devs[i].idx = i;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    inited = 1;
    return OK;
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlShutdown(void) { if (!inited) return UNINIT; inited = 0; return OK; }
const char *nvmlErrorString(nvmlReturn_t r) { static char b[64]; snprintf(b, sizeof b, "fake nvml error %d", r); return b; }
nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int n) { if (!inited) return UNINIT; snprintf(v, n, "999.99-fake"); return OK; }
nvmlReturn_t nvmlSystemGetNVMLVersion(char *v, unsigned int n) { if (!inited) return UNINIT; snprintf(v, n, "13.999.99"); return OK; }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *c) { if (!inited) return UNINIT; *c = (unsigned)count; return OK; }
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
    if (!inited) return UNINIT;
    if ((int)i >= count) return INVALID;
    *d = &devs[i]; return OK;
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *n, unsigned int len) { CHECK(); snprintf(n, len, "Fake GPU %d", d->idx); return OK; }
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *n, unsigned int len) {
    CHECK(); snprintf(n, len, "GPU-00000000-0000-0000-0000-%012d", d->idx); return OK;
}
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *p) { (void)d; CHECK(); *p = power_mw; return OK; }
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *e) {
    CHECK();
    if (envint("FAKE_NVML_ENERGY_UNSUPPORTED", 0)) return NOT_SUPPORTED;
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    double dt = (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
    *e = 1000000ULL * (unsigned)(d->idx + 1) + (unsigned long long)(power_mw * dt);
    return OK;
}
static unsigned int procs_on(nvmlDevice_t d) { return d->idx == 0 ? npids : 0; }
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    CHECK();
    m->total = 80ULL << 30;
    m->used = (512ULL << 20) + (unsigned long long)procs_on(d) * (1ULL << 30);
    m->free = m->total - m->used;
    return OK;
}
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    CHECK(); u->gpu = procs_on(d) ? 87 : 0; u->memory = procs_on(d) ? 40 : 0; return OK;
}
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) {
    CHECK(); if (sensor != 0) return INVALID; *t = 60 + (unsigned)d->idx; return OK;
}
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *c) {
    (void)d; CHECK(); *c = type == 1 ? 1980 : 2619; return OK;  /* 1 = NVML_CLOCK_SM */
}
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *r) {
    CHECK(); *r = d->idx == 0 ? 0x4 : 0x1; return OK;  /* GPU 0: SW power cap; others: idle */
}
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *cnt, nvmlProcessInfo_t *infos) {
    CHECK();
    unsigned int n = procs_on(d);
    if (n == 0) { *cnt = 0; return OK; }
    if (infos == NULL || *cnt < n) { *cnt = n; return INSUFFICIENT_SIZE; }
    for (unsigned i = 0; i < n; i++) {
        infos[i].pid = pids[i]; infos[i].usedGpuMemory = 1ULL << 30;
        infos[i].gpuInstanceId = 0xFFFFFFFF; infos[i].computeInstanceId = 0xFFFFFFFF;
    }
    *cnt = n; return OK;
}
