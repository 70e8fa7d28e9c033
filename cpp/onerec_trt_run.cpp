// onerec_trt_run: load a TensorRT plan built by `onerec-trt build`, run one batch and print the
// outputs and the latency. Written against TensorRT's documented C++ API (NvInferRuntime.h,
// TensorRT 10/11); it has not been compiled against TensorRT on this project's machines.
//
//   onerec_trt_run --plan fp8.plan [--plugin libplugins.so]... [--input history=history.npy]...
//                  [--batch N] [--warmup 10] [--iters 100] [--rows 2]
//
// Inputs come from .npy files (numpy.save); an input without a file is zeros, with --batch
// rows on its dynamic first axis. Engines with AOT Python plugins need no plugin library.

#include "npy.h"
#include "plan_version.h"

#include <NvInferRuntime.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace
{
class Logger : public nvinfer1::ILogger
{
    void log(Severity severity, char const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
            std::cerr << "[TensorRT] " << msg << "\n";
    }
};

void check(cudaError_t status, char const* what)
{
    if (status != cudaSuccess)
        throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

struct Options
{
    std::string plan;
    std::vector<std::string> plugins;
    std::map<std::string, std::string> inputs; // tensor name -> .npy path
    int64_t batch = 1;
    int warmup = 10;
    int iters = 100;
    int rows = 2;
};

Options parseArgs(int argc, char** argv)
{
    Options opts;
    for (int i = 1; i < argc; ++i)
    {
        std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                throw std::runtime_error(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--plan")
            opts.plan = value();
        else if (arg == "--plugin")
            opts.plugins.push_back(value());
        else if (arg == "--input")
        {
            auto spec = value();
            auto eq = spec.find('=');
            if (eq == std::string::npos)
                throw std::runtime_error("--input takes NAME=FILE.npy, got " + spec);
            opts.inputs[spec.substr(0, eq)] = spec.substr(eq + 1);
        }
        else if (arg == "--batch")
            opts.batch = std::stoll(value());
        else if (arg == "--warmup")
            opts.warmup = std::stoi(value());
        else if (arg == "--iters")
            opts.iters = std::stoi(value());
        else if (arg == "--rows")
            opts.rows = std::stoi(value());
        else
            throw std::runtime_error("unknown argument " + arg + " (see the header of "
                                     "onerec_trt_run.cpp)");
    }
    if (opts.plan.empty())
        throw std::runtime_error("--plan FILE is required");
    return opts;
}

std::vector<char> readFile(std::string const& path)
{
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in)
        throw std::runtime_error("cannot open " + path);
    std::vector<char> data(static_cast<size_t>(in.tellg()));
    in.seekg(0);
    in.read(data.data(), static_cast<std::streamsize>(data.size()));
    return data;
}

// The version that built a plan (its header) against the TensorRT library actually loaded
// (getInferLibVersion(), not the header macros this file was compiled with: LD_LIBRARY_PATH may
// load another libnvinfer), checked before deserializing so a mismatch is one clear line.
void checkPlanVersion(std::vector<char> const& plan, std::string const& path)
{
    TrtVersion const running = decodeLibVersion(getInferLibVersion());
    TrtVersion const compiled{NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR, NV_TENSORRT_PATCH};
    if (versionText(running) != versionText(compiled))
        std::cerr << "note: compiled against TensorRT " << versionText(compiled)
                  << " headers, running with the TensorRT " << versionText(running)
                  << " library\n";
    std::string const mismatch = planVersionMismatch(plan, running, path);
    if (!mismatch.empty())
        throw std::runtime_error(mismatch);
}

size_t elementSize(nvinfer1::DataType type)
{
    using nvinfer1::DataType;
    switch (type)
    {
    case DataType::kINT64: return 8;
    case DataType::kFLOAT:
    case DataType::kINT32: return 4;
    case DataType::kHALF:
    case DataType::kBF16: return 2;
    case DataType::kINT8:
    case DataType::kUINT8:
    case DataType::kBOOL:
    case DataType::kFP8: return 1;
    default: throw std::runtime_error("unsupported I/O data type");
    }
}

std::string npyDescr(nvinfer1::DataType type)
{
    using nvinfer1::DataType;
    switch (type)
    {
    case DataType::kINT64: return "<i8";
    case DataType::kFLOAT: return "<f4";
    case DataType::kINT32: return "<i4";
    case DataType::kHALF: return "<f2";
    case DataType::kINT8: return "|i1";
    case DataType::kUINT8: return "|u1";
    case DataType::kBOOL: return "|b1";
    default: return "?";
    }
}

int64_t volume(nvinfer1::Dims const& dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < dims.nbDims; ++i)
        n *= dims.d[i];
    return n;
}

std::string shapeString(nvinfer1::Dims const& dims)
{
    std::ostringstream out;
    out << "[";
    for (int32_t i = 0; i < dims.nbDims; ++i)
        out << (i ? ", " : "") << dims.d[i];
    out << "]";
    return out.str();
}

struct Tensor
{
    std::string name;
    bool isInput = false;
    nvinfer1::DataType type{};
    nvinfer1::Dims dims{};
    std::vector<char> host;
    void* device = nullptr;
};

void printTensor(Tensor const& t, int rows)
{
    std::cout << t.name << " " << shapeString(t.dims) << ":\n";
    int64_t perRow = t.dims.nbDims > 1 ? volume(t.dims) / std::max<int64_t>(t.dims.d[0], 1) : 1;
    int64_t shown = std::min<int64_t>(volume(t.dims), perRow * rows);
    for (int64_t i = 0; i < shown; ++i)
    {
        if (t.type == nvinfer1::DataType::kINT64)
            std::cout << reinterpret_cast<int64_t const*>(t.host.data())[i];
        else if (t.type == nvinfer1::DataType::kINT32)
            std::cout << reinterpret_cast<int32_t const*>(t.host.data())[i];
        else if (t.type == nvinfer1::DataType::kFLOAT)
            std::cout << reinterpret_cast<float const*>(t.host.data())[i];
        else
            std::cout << "?";
        std::cout << ((i + 1) % perRow == 0 ? "\n" : " ");
    }
}

// Bind every I/O tensor: inputs from their .npy (or zeros), outputs sized from the context.
std::vector<Tensor> bindTensors(nvinfer1::ICudaEngine& engine, nvinfer1::IExecutionContext& ctx,
                                Options const& opts)
{
    std::vector<Tensor> tensors;
    for (int32_t i = 0; i < engine.getNbIOTensors(); ++i)
    {
        Tensor t;
        t.name = engine.getIOTensorName(i);
        t.isInput = engine.getTensorIOMode(t.name.c_str()) == nvinfer1::TensorIOMode::kINPUT;
        t.type = engine.getTensorDataType(t.name.c_str());
        t.dims = engine.getTensorShape(t.name.c_str());
        tensors.push_back(t);
    }
    for (auto& t : tensors)
    {
        if (!t.isInput)
            continue;
        auto file = opts.inputs.find(t.name);
        if (file != opts.inputs.end())
        {
            NpyArray array = readNpy(file->second);
            if (array.descr != npyDescr(t.type))
                throw std::runtime_error(file->second + " is " + array.descr + ", input '" + t.name
                                         + "' takes " + npyDescr(t.type));
            t.dims.nbDims = static_cast<int32_t>(array.shape.size());
            std::copy(array.shape.begin(), array.shape.end(), t.dims.d);
            t.host = std::move(array.data);
        }
        else
        {
            for (int32_t d = 0; d < t.dims.nbDims; ++d)
                t.dims.d[d] = t.dims.d[d] < 0 ? opts.batch : t.dims.d[d];
            std::cerr << "input '" << t.name << "' has no --input file: zeros "
                      << shapeString(t.dims) << "\n";
            t.host.assign(static_cast<size_t>(volume(t.dims)) * elementSize(t.type), 0);
        }
        if (!ctx.setInputShape(t.name.c_str(), t.dims))
            throw std::runtime_error("the engine's profile refuses shape " + shapeString(t.dims)
                                     + " for '" + t.name + "'");
    }
    for (auto& t : tensors)
    {
        if (!t.isInput)
        {
            t.dims = ctx.getTensorShape(t.name.c_str());
            if (volume(t.dims) < 0)
                throw std::runtime_error("output '" + t.name + "' has a data-dependent shape");
            t.host.resize(static_cast<size_t>(volume(t.dims)) * elementSize(t.type));
        }
        check(cudaMalloc(&t.device, std::max<size_t>(t.host.size(), 1)), "cudaMalloc");
        if (t.isInput)
            check(cudaMemcpy(t.device, t.host.data(), t.host.size(), cudaMemcpyHostToDevice),
                  "copy input");
        if (!ctx.setTensorAddress(t.name.c_str(), t.device))
            throw std::runtime_error("setTensorAddress failed for '" + t.name + "'");
    }
    return tensors;
}

std::vector<float> timeRuns(nvinfer1::IExecutionContext& ctx, cudaStream_t stream,
                            Options const& opts)
{
    for (int i = 0; i < opts.warmup; ++i)
        if (!ctx.enqueueV3(stream))
            throw std::runtime_error("enqueueV3 failed");
    check(cudaStreamSynchronize(stream), "warm-up");
    cudaEvent_t start, stop;
    check(cudaEventCreate(&start), "event");
    check(cudaEventCreate(&stop), "event");
    std::vector<float> ms;
    for (int i = 0; i < opts.iters; ++i)
    {
        check(cudaEventRecord(start, stream), "record");
        if (!ctx.enqueueV3(stream))
            throw std::runtime_error("enqueueV3 failed");
        check(cudaEventRecord(stop, stream), "record");
        check(cudaEventSynchronize(stop), "synchronize");
        float elapsed = 0.F;
        check(cudaEventElapsedTime(&elapsed, start, stop), "elapsed");
        ms.push_back(elapsed);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(ms.begin(), ms.end());
    return ms;
}

int run(Options const& opts)
{
    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    if (!runtime)
        throw std::runtime_error("createInferRuntime failed");
    for (auto const& lib : opts.plugins)
        if (runtime->getPluginRegistry().loadLibrary(lib.c_str()) == nullptr)
            throw std::runtime_error("cannot load plugin library " + lib);
    std::vector<char> plan = readFile(opts.plan);
    checkPlanVersion(plan, opts.plan);
    std::unique_ptr<nvinfer1::ICudaEngine> engine{
        runtime->deserializeCudaEngine(plan.data(), plan.size())};
    if (!engine)
        throw std::runtime_error("TensorRT could not deserialize " + opts.plan);
    std::unique_ptr<nvinfer1::IExecutionContext> ctx{engine->createExecutionContext()};
    if (!ctx)
        throw std::runtime_error("createExecutionContext failed");
    cudaStream_t stream;
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    std::vector<Tensor> tensors = bindTensors(*engine, *ctx, opts);
    std::vector<float> ms = timeRuns(*ctx, stream, opts);
    for (auto& t : tensors)
        if (!t.isInput)
            check(cudaMemcpy(t.host.data(), t.device, t.host.size(), cudaMemcpyDeviceToHost),
                  "copy output");
    for (auto const& t : tensors)
        if (!t.isInput)
            printTensor(t, opts.rows);
    if (!ms.empty())
    {
        double mean = 0;
        for (float x : ms)
            mean += x;
        mean /= static_cast<double>(ms.size());
        std::printf("latency over %zu runs (TensorRT %s, GPU time per enqueueV3): mean "
                    "%.3f ms, p50 %.3f ms, p99 %.3f ms\n", ms.size(),
                    versionText(decodeLibVersion(getInferLibVersion())).c_str(), mean,
                    ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]);
    }
    for (auto& t : tensors)
        cudaFree(t.device);
    cudaStreamDestroy(stream);
    return 0;
}
} // namespace

int main(int argc, char** argv)
{
    try
    {
        return run(parseArgs(argc, argv));
    }
    catch (std::exception const& e)
    {
        std::cerr << "onerec_trt_run: error: " << e.what() << "\n";
        return 2;
    }
}
