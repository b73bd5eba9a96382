from django.urls import path

from . import views

urlpatterns = [
    path("sales/<int:pk>/buy", views.buy, name="buy"),
    path("orders/", views.order_list, name="order-list"),
    path("orders/<uuid:token>", views.order_detail, name="order-detail"),
]
