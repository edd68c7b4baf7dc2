// Provider "devices": every device registered in the driver model.
//
// device_add() puts every device's kobject on devices_kset (a struct kset*:
// its `list` of kobjects linked by kobject.entry); the kobject is struct
// device's `kobj`. The list is walked bounded and cycle-safe.
//
// For each device, named by its kobject's name ("device NAME" as subject, the
// device as object), the references the kernel keeps into code or data that
// may be a module's:
// - its own release function, with its bound driver (struct device_driver,
//   statically defined by the driver's module) as data;
// - its device_type (data) and the type's release function;
// - its class (data) and the class's dev_release function;
// - its bus_type (data);
// - its driver_data (dev_get_drvdata(); a misc device's is its miscdevice).
// device_release() calls the first of dev->release, type->release and
// class->dev_release that is set: the detail says which one that is.
//
// Not read: kobjects that are not devices (drivers and buses on their own
// ksets, module and firmware kobjects), devices initialised but never added,
// and other callbacks of drivers, types and classes (probe, remove, uevent).
#include <optional>
#include <string>

#include "kernel/linux/providers.h"
#include "kernel/list_walk.h"

namespace kq {
namespace {

constexpr size_t kMaxDevices = 100000;  // beyond this the input is not a kernel's
constexpr size_t kMaxName = 64;

struct DeviceLayout {
    uint64_t kset_list, node;             // devices_kset->list; the device's kobj.entry
    uint64_t kobj_name;                   // in device
    uint64_t release, type, cls, bus, driver, driver_data;  // in device
    uint64_t type_release, type_name, class_release, class_name, bus_name, driver_name;

    explicit DeviceLayout(const LinuxKernel& k) {
        kset_list = k.off("kset", "list");
        node = k.off("device", "kobj") + k.off("kobject", "entry");
        kobj_name = k.off("device", "kobj") + k.off("kobject", "name");
        release = k.off("device", "release");
        type = k.off("device", "type");
        cls = k.off("device", "class");
        bus = k.off("device", "bus");
        driver = k.off("device", "driver");
        driver_data = k.off("device", "driver_data");
        type_release = k.off("device_type", "release");
        type_name = k.off("device_type", "name");
        class_release = k.off("class", "dev_release");
        class_name = k.off("class", "name");
        bus_name = k.off("bus_type", "name");
        driver_name = k.off("device_driver", "name");
    }
};

class DeviceReader {
public:
    DeviceReader(const SurveyContext& ctx, Survey& out) : k_(ctx.kernel), mem_(k_.mem()), L_(k_), out_(out) {}

    void run() {
        uint64_t kset = k_.read_u64_or_throw(k_.symbol("devices_kset"), "devices_kset");
        if (!kset) throw Error("devices_kset is NULL: the driver model is not initialised");
        auto w = walk_list(mem_, kset + L_.kset_list, L_.node, [&](uint64_t dev) {
            device(dev);
            return true;
        }, kMaxDevices);
        problems_.check("devices_kset", w);
        std::string covered = std::to_string(w.count) + " devices on devices_kset (" + std::to_string(drivers_) +
                              " bound to a driver, " + std::to_string(with_release_) +
                              " with a release function); not read: kobjects that are not devices, drivers "
                              "without a device, callbacks other than release";
        out_.coverage.push_back({"devices", covered, problems_.empty(), problems_.summary()});
    }

private:
    // The string that the pointer at `at` points to ("" if none).
    std::string name_at(uint64_t at) {
        auto p = mem_.read_u64(at);
        return p && *p ? mem_.read_cstr(*p, kMaxName) : "";
    }

    void device(uint64_t dev) {
        uint64_t w[6];
        const uint64_t offs[6] = {L_.release, L_.type, L_.cls, L_.bus, L_.driver, L_.driver_data};
        bool ok = true;
        for (int i = 0; i < 6; ++i) {
            auto v = mem_.read_u64(dev + offs[i]);
            ok &= bool(v);
            w[i] = v.value_or(0);
        }
        const auto [release, type, cls, bus, driver, drvdata] = w;
        std::string name = name_at(dev + L_.kobj_name);
        std::string subject = "device " + (name.empty() ? "at " + addr_text(dev) : name);
        if (!ok) {
            problems_.add((name.empty() ? "" : subject + ": ") + "struct device at " + addr_text(dev) + " unreadable");
            out_.refs.push_back({RefKind::device, 0, dev, 0, subject, "unreadable struct device", {}});
            return;
        }
        const uint64_t type_release = type ? mem_.read_u64(type + L_.type_release).value_or(0) : 0;
        const uint64_t class_release = cls ? mem_.read_u64(cls + L_.class_release).value_or(0) : 0;
        // What device_release() calls.
        const uint64_t called = release ? release : type_release ? type_release : class_release;
        with_release_ += called != 0;
        auto role = [&](uint64_t fn) { return fn && fn == called ? " (the release called)" : ""; };

        std::string detail = std::string("device release") + role(release);
        if (driver) {
            ++drivers_;
            detail += "; driver " + name_at(driver + L_.driver_name);
        }
        out_.refs.push_back({RefKind::device, release, dev, driver, subject, detail, {}});
        if (type)
            out_.refs.push_back({RefKind::device, type_release, dev, type, subject,
                                 "device_type " + name_at(type + L_.type_name) + role(type_release), {}});
        if (cls)
            out_.refs.push_back({RefKind::device, class_release, dev, cls, subject,
                                 "class " + name_at(cls + L_.class_name) + role(class_release), {}});
        if (bus) out_.refs.push_back({RefKind::device, 0, dev, bus, subject, "bus " + name_at(bus + L_.bus_name), {}});
        if (drvdata) out_.refs.push_back({RefKind::device, 0, dev, drvdata, subject, "driver_data", {}});
    }

    const LinuxKernel& k_;
    MemorySource& mem_;
    DeviceLayout L_;
    Survey& out_;
    size_t drivers_ = 0, with_release_ = 0;
    WalkProblems problems_;
};

}  // namespace

void survey_devices(const SurveyContext& ctx, Survey& out) { DeviceReader(ctx, out).run(); }

}  // namespace kq
