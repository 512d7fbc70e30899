"""The sandbox that runs generated code: a pool of warm workers (:mod:`.pool`) behind bubblewrap's
namespaces and a cgroup (:mod:`.kernel`), a seccomp filter (:mod:`.seccomp`), and the worker that
runs inside (:mod:`.boot`)."""
