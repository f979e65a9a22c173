import cProfile, pstats, sys, importlib.util, time, io
t=time.time()
spec = importlib.util.spec_from_file_location("hotplug_bridge", "/work/main/bridge/python/hotplug_bridge.py")
hb = importlib.util.module_from_spec(spec); spec.loader.exec_module(hb)
print("import %.1f ms" % ((time.time()-t)*1000))
for name, f in (("open", lambda: hb.open_instance()), ("refresh_network", lambda: hb.refresh_network(2))):
    pr=cProfile.Profile(); t=time.time(); pr.enable(); r=f(); pr.disable()
    print("== %s %.1f ms ok=%s" % (name, (time.time()-t)*1000, r.get("ok")))
    s=io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(28); print(s.getvalue()[:6000])
