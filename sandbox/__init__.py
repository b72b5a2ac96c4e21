"""Local, stateful, protocol-faithful fakes of WeChat Pay v3, Alipay and Wallyt (dev/test only).

Run with `python -m sandbox`; see sandbox/README.md. Must not import the Django project.
"""
