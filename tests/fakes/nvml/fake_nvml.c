/*
 * A stand-in for the NVIDIA driver's libnvidia-ml.so.1, for unit tests on machines without a GPU.
 *
 * It exports the NVML entry points that plugins/module_utils/_nvml.py reaches through the real
 * nvidia-ml-py binding (ctypes loads it as "libnvidia-ml.so.1" via LD_LIBRARY_PATH), with the ABI
 * of nvml.h: the same return codes, struct layouts and version words. What the "GPUs" report is
 * read from a plain-text state file named by the environment variable FAKE_NVML_STATE, re-read on
 * every nvmlInit*:
 *
 *   init <rc>                          return code of nvmlInit* (9 = driver not loaded)
 *   driver <version>                   nvmlSystemGetDriverVersion
 *   cycle <0|1>                        1: memory samples wrap around instead of repeating the last
 *   device <total_bytes> <uuid> <name...>          one GPU; indexes follow the order of lines
 *   mem <index> <used_bytes> <reserved_bytes>      one memory sample of that GPU (see below)
 *   proc <index> <pid> <used_bytes>                a compute process on that GPU
 *   fail <function> <rc>               make that entry point return rc
 *
 * Memory samples: the n-th successful memory query of a GPU (v1 or v2) answers its n-th "mem"
 * line; past the last line it repeats the last one (or wraps around with "cycle 1"). This is what
 * the settle tests step through. v2 (nvmlMemory_v2_t) reports used and reserved apart; v1
 * (nvmlMemory_t) reports used + reserved as "used", as real drivers do.
 *
 * Build variants (see tests/unit/conftest.py):
 *   default                  every entry point below
 *   -DFAKE_LEGACY            an old driver: no nvmlDeviceGetMemoryInfo_v2 and no
 *                            nvmlDeviceGetComputeRunningProcesses_v2/_v3 symbols at all
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

#define MAX_DEVICES 16
#define MAX_SAMPLES 512
#define MAX_PROCS 64
#define MAX_FAILS 32

typedef struct {
    unsigned int pid;
    unsigned long long used;
} fake_proc_t;

typedef struct {
    char name[96];
    char uuid[96];
    unsigned long long total;
    unsigned long long used[MAX_SAMPLES];
    unsigned long long reserved[MAX_SAMPLES];
    int nsamples;
    int next_sample;
    fake_proc_t procs[MAX_PROCS];
    int nprocs;
} fake_device_t;

typedef struct {
    char function[96];
    nvmlReturn_t rc;
} fake_fail_t;

static fake_device_t devices[MAX_DEVICES];
static int ndevices;
static char driver_version[80];
static int cycle;
static fake_fail_t fails[MAX_FAILS];
static int nfails;
static int initialized;

typedef fake_device_t *nvmlDevice_t;

/* nvml.h layouts */
typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

#define NVML_STRUCT_VERSION(size, ver) ((unsigned int)(size) | ((ver) << 24U))
#define nvmlMemory_v2 NVML_STRUCT_VERSION(sizeof(nvmlMemory_v2_t), 2)

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_v2_t; /* v3 has the same layout */

static nvmlReturn_t injected(const char *function)
{
    for (int i = 0; i < nfails; i++)
        if (strcmp(fails[i].function, function) == 0)
            return fails[i].rc;
    return NVML_SUCCESS;
}

#define INJECT()                                  \
    do {                                          \
        nvmlReturn_t _rc = injected(__func__);    \
        if (_rc != NVML_SUCCESS)                  \
            return _rc;                           \
    } while (0)

static nvmlReturn_t load_state(int *init_rc)
{
    const char *path = getenv("FAKE_NVML_STATE");
    char line[512];
    FILE *f;

    memset(devices, 0, sizeof(devices));
    ndevices = 0;
    nfails = 0;
    cycle = 0;
    strcpy(driver_version, "580.0.fake");
    *init_rc = NVML_SUCCESS;
    if (path == NULL || (f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "fake NVML: FAKE_NVML_STATE is unset or unreadable (%s)\n", path ? path : "unset");
        return NVML_ERROR_UNKNOWN;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char word[32] = "";
        int consumed = 0;
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "%31s %n", word, &consumed) < 1 || word[0] == '#')
            continue;
        const char *rest = line + consumed;
        if (strcmp(word, "init") == 0) {
            sscanf(rest, "%d", init_rc);
        } else if (strcmp(word, "driver") == 0) {
            snprintf(driver_version, sizeof(driver_version), "%s", rest);
        } else if (strcmp(word, "cycle") == 0) {
            sscanf(rest, "%d", &cycle);
        } else if (strcmp(word, "device") == 0 && ndevices < MAX_DEVICES) {
            fake_device_t *d = &devices[ndevices];
            int n = 0;
            if (sscanf(rest, "%llu %95s %n", &d->total, d->uuid, &n) >= 2) {
                snprintf(d->name, sizeof(d->name), "%s", rest + n);
                ndevices++;
            }
        } else if (strcmp(word, "mem") == 0) {
            int i;
            unsigned long long used, reserved;
            if (sscanf(rest, "%d %llu %llu", &i, &used, &reserved) == 3 && i >= 0 && i < ndevices &&
                devices[i].nsamples < MAX_SAMPLES) {
                devices[i].used[devices[i].nsamples] = used;
                devices[i].reserved[devices[i].nsamples] = reserved;
                devices[i].nsamples++;
            }
        } else if (strcmp(word, "proc") == 0) {
            int i;
            unsigned int pid;
            unsigned long long used;
            if (sscanf(rest, "%d %u %llu", &i, &pid, &used) == 3 && i >= 0 && i < ndevices &&
                devices[i].nprocs < MAX_PROCS) {
                devices[i].procs[devices[i].nprocs].pid = pid;
                devices[i].procs[devices[i].nprocs].used = used;
                devices[i].nprocs++;
            }
        } else if (strcmp(word, "fail") == 0 && nfails < MAX_FAILS) {
            if (sscanf(rest, "%95s %d", fails[nfails].function, &fails[nfails].rc) == 2)
                nfails++;
        }
    }
    fclose(f);
    return NVML_SUCCESS;
}

static int valid(nvmlDevice_t device)
{
    return initialized && device >= devices && device < devices + ndevices;
}

/* The current sample of a GPU; advances once the query succeeded. */
static void take_sample(nvmlDevice_t d, unsigned long long *used, unsigned long long *reserved)
{
    int i = d->next_sample;
    if (d->nsamples == 0) {
        *used = 0;
        *reserved = 0;
        return;
    }
    if (i >= d->nsamples)
        i = cycle ? i % d->nsamples : d->nsamples - 1;
    *used = d->used[i];
    *reserved = d->reserved[i];
    d->next_sample++;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    int init_rc;
    nvmlReturn_t rc = load_state(&init_rc);
    (void)flags;
    if (rc != NVML_SUCCESS)
        return rc;
    if (init_rc != NVML_SUCCESS)
        return init_rc;
    initialized = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void)
{
    if (!initialized)
        return NVML_ERROR_UNINITIALIZED;
    initialized = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case 0: return "Success";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 9: return "Driver Not Loaded";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    case 25: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    INJECT();
    if (!initialized)
        return NVML_ERROR_UNINITIALIZED;
    if (strlen(driver_version) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(version, driver_version);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    INJECT();
    if (!initialized)
        return NVML_ERROR_UNINITIALIZED;
    *count = (unsigned int)ndevices;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    INJECT();
    if (!initialized)
        return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned int)ndevices)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(const char *value, char *out, unsigned int length)
{
    if (strlen(value) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    INJECT();
    if (!valid(device))
        return NVML_ERROR_INVALID_ARGUMENT;
    return copy_string(device->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    INJECT();
    if (!valid(device))
        return NVML_ERROR_INVALID_ARGUMENT;
    return copy_string(device->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    unsigned long long used, reserved;
    INJECT();
    if (!valid(device) || memory == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    take_sample(device, &used, &reserved);
    memory->total = device->total;
    memory->used = used + reserved;
    memory->free = device->total - used - reserved;
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    unsigned long long used, reserved;
    INJECT();
    if (!valid(device) || memory == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    take_sample(device, &used, &reserved);
    memory->total = device->total;
    memory->reserved = reserved;
    memory->used = used;
    memory->free = device->total - used - reserved;
    return NVML_SUCCESS;
}
#endif

/* nvmlDeviceGetComputeRunningProcesses*: size query with infos == NULL, then the copy. */
#define LIST_PROCESSES(device, count, infos, fill)         \
    do {                                                    \
        if (!valid(device) || (count) == NULL)              \
            return NVML_ERROR_INVALID_ARGUMENT;             \
        unsigned int _n = (unsigned int)(device)->nprocs;   \
        if (_n == 0) {                                      \
            *(count) = 0;                                   \
            return NVML_SUCCESS;                            \
        }                                                   \
        if ((infos) == NULL || *(count) < _n) {             \
            *(count) = _n;                                  \
            return NVML_ERROR_INSUFFICIENT_SIZE;            \
        }                                                   \
        for (unsigned int i = 0; i < _n; i++) {             \
            (infos)[i].pid = (device)->procs[i].pid;        \
            (infos)[i].usedGpuMemory = (device)->procs[i].used; \
            fill;                                           \
        }                                                   \
        *(count) = _n;                                      \
        return NVML_SUCCESS;                                \
    } while (0)

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *count,
                                                  nvmlProcessInfo_v1_t *infos)
{
    INJECT();
    LIST_PROCESSES(device, count, infos, (void)0);
}

#ifndef FAKE_LEGACY
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_v2_t *infos)
{
    INJECT();
    LIST_PROCESSES(device, count, infos,
                   (infos[i].gpuInstanceId = 0xFFFFFFFFu, infos[i].computeInstanceId = 0xFFFFFFFFu));
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_v2_t *infos)
{
    INJECT();
    LIST_PROCESSES(device, count, infos,
                   (infos[i].gpuInstanceId = 0xFFFFFFFFu, infos[i].computeInstanceId = 0xFFFFFFFFu));
}
#endif
