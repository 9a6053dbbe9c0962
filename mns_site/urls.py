from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import views
from core.relay import RelayView
from mns_site import pages
from mns_site.dapp import DappView
from mns_site.metrics import MetricsView

api_v1 = [
    path("health", views.HealthView.as_view(), name="health"),
    path("relay", RelayView.as_view(), name="relay"),
    path("", include("registry.urls")),
    path("", include("handshake.urls")),
    path("", include("registration.urls")),
    path("", include("mailboxes.urls")),
    path("", include("entrypoints.urls")),
    path("", include("federation.urls")),
]

urlpatterns = [
    path("", pages.FrontPageView.as_view(), name="front"),
    path("favicon.ico", pages.FaviconView.as_view(), name="favicon"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
    path("maxima/", include("maxima.urls")),
    path("onchain/", include("onchain.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(".well-known/mns.json", views.WellKnownView.as_view(), name="well-known"),
    path("app/", DappView.as_view(), name="dapp"),
    re_path(r"^app/(?P<path>[^/]+)$", DappView.as_view(), name="dapp-file"),
]

if settings.MNS_BENCH:  # the benchmark's baselines, served by the same gunicorn (`make bench` only)
    urlpatterns.append(path("bench/", include("bench.urls")))

handler400 = "core.errors.handler400"
handler403 = "core.errors.handler403"
handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
