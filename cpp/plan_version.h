// The TensorRT version checks of onerec_trt_run that need no TensorRT: decoding the running
// library's getInferLibVersion() and comparing it with the version a plan's header records.
// Header-only; compiled and tested without TensorRT (tests/integration/test_build_cpp.py).
#pragma once

#include <cstdint>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

struct TrtVersion
{
    int major = 0;
    int minor = 0;
    int patch = 0;
};

// getInferLibVersion() returns NV_TENSORRT_VERSION of the library that is loaded, encoded as
// major * 10000 + minor * 100 + patch (NvInferRuntimeBase.h, TensorRT 10: NV_TENSORRT_VERSION_INT).
inline TrtVersion decodeLibVersion(int32_t version)
{
    return TrtVersion{version / 10000, (version / 100) % 100, version % 100};
}

inline std::string versionText(TrtVersion v)
{
    std::ostringstream out;
    out << v.major << "." << v.minor << "." << v.patch;
    return out.str();
}

// Empty when the plan may run on `running` (same major.minor.patch, or a header layout this
// check does not know: TensorRT judges then); else the one-line reason. Throws when the bytes
// are not a TensorRT plan. Header: tag "ftrt" at 0, serialization version 0 at 4, the version
// that built the plan in bytes 24-27 (what trtexec --getPlanVersionOnly reads).
inline std::string planVersionMismatch(std::vector<char> const& plan, TrtVersion running,
                                       std::string const& path)
{
    if (plan.size() < 28 || std::string(plan.data(), 4) != "ftrt")
        throw std::runtime_error(path + " is not a TensorRT plan");
    uint32_t serialization = 0;
    std::memcpy(&serialization, plan.data() + 4, 4);
    if (serialization != 0)
        return "";
    auto const* v = reinterpret_cast<unsigned char const*>(plan.data() + 24);
    if (v[0] == running.major && v[1] == running.minor && v[2] == running.patch)
        return "";
    std::ostringstream msg;
    msg << path << " was built with TensorRT " << int(v[0]) << "." << int(v[1]) << "."
        << int(v[2]) << ", the TensorRT library loaded here is " << versionText(running)
        << ": rebuild the plan with this TensorRT";
    return msg.str();
}
