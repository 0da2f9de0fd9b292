// The caller's map: Leaflet (no WebGL: headless Chromium and old control-room PCs have none).
// The basemap, best first: the deployment's own PMTiles file of streets (MAP_PMTILES), read in
// byte ranges from our server with `pmtiles` and painted on canvas by protomaps-leaflet, in a
// light or a dark flavour as the page's look; tiles from MAP_TILE_URL where the deployment runs
// a tile server; otherwise the world-atlas country outlines, which say that street detail is
// not configured. Every one works with no network beyond our own server.
import * as L from '/static/vendor/leaflet/leaflet-src.esm.js';
import { t } from './i18n.js';

const ATLAS_URL = '/static/vendor/world-atlas/countries-50m.json';
const PMTILES_URL = '/static/vendor/pmtiles/index.js';
const PROTOMAPS_URL = '/static/vendor/protomaps-leaflet/protomaps-leaflet.js';
/** Country outlines hold no street detail: zooming past this shows one flat colour. */
const OFFLINE_MAX_ZOOM = 11;
/** Offline, a new caller is shown with the borders around them (which country, which region);
    the exact figures are in the text under the map. */
const OFFLINE_FIT_ZOOM = 6;
/** With streets (PMTiles or tiles): a house's width is a few pixels here. Beyond the PMTiles
    file's own deepest zoom its vectors are drawn larger, not blurred. */
const STREET_MAX_ZOOM = 19;
/** Positions kept for the track line; older ones drop off. */
const TRACK_POINTS_MAX = 500;

let protomapsReady = null;

/**
 * protomaps-leaflet is a browser build that extends a global `L` when its layer is made. It is
 * given a copy of the ES module's namespace (which is frozen), the same one leaflet.markercluster
 * gets (threats_common.js): its layer is then one of the very classes these maps use.
 * @returns {Promise<any>} the library's namespace, or null without it
 */
function loadProtomaps() {
  if (!protomapsReady) {
    protomapsReady = new Promise((resolve) => {
      const global = /** @type {any} */ (window);
      global.L = global.L || { ...L };
      const script = document.createElement('script');
      script.src = PROTOMAPS_URL;
      script.onload = () => resolve(global.protomapsL || null);
      script.onerror = () => resolve(null);
      document.head.append(script);
    });
  }
  return protomapsReady;
}

/**
 * MAP_ATTRIBUTION is plain text; Leaflet's attribution control takes HTML.
 * @param {string} text
 */
function escapeHtml(text) {
  const span = document.createElement('span');
  span.textContent = text;
  return span.innerHTML;
}

/** Staff pages have the dark look (24/7 rooms), public pages the light one. */
function pageIsDark() {
  return document.body.classList.contains('look-staff');
}

/**
 * Makes each ring continuous across the antimeridian (Russia, Fiji, Antarctica): a jump of more
 * than 180 degrees between two points continues past ±180 instead, or Leaflet draws a line
 * across the whole world.
 * @param {{type: string, coordinates: any} | null} geometry
 */
function unwrapGeometry(geometry) {
  if (!geometry) {
    return;
  }
  const polygons = geometry.type === 'MultiPolygon' ? geometry.coordinates : [geometry.coordinates];
  for (const polygon of polygons) {
    for (const ring of polygon) {
      let offset = 0;
      for (let index = 1; index < ring.length; index += 1) {
        const step = ring[index][0] + offset - ring[index - 1][0];
        if (step > 180) {
          offset -= 360;
        } else if (step < -180) {
          offset += 360;
        }
        ring[index][0] += offset;
      }
    }
  }
}

/**
 * A map in `element` (which keeps its data-* attributes) with the caller's position, accuracy
 * circle and track.
 */
export class CallerMap {
  /** @param {HTMLElement} element */
  constructor(element) {
    this.element = element;
    const pmtilesUrl = element.dataset.pmtilesUrl || '';
    const tileUrl = element.dataset.tileUrl || '';
    /** Which basemap is drawn: `pmtiles`, `tiles` or `outline` (also on data-basemap). */
    this.basemap = pmtilesUrl ? 'pmtiles' : tileUrl ? 'tiles' : 'outline';
    /** Street detail: the pages zoom in as far as a street when there is one to show. */
    this.streets = this.basemap !== 'outline';
    element.dataset.basemap = this.basemap;
    this.maxZoom = this.streets ? STREET_MAX_ZOOM : OFFLINE_MAX_ZOOM;
    this.fitZoom = this.streets ? STREET_MAX_ZOOM - 1 : OFFLINE_FIT_ZOOM;
    this.map = L.map(element, {
      zoomControl: true,
      attributionControl: this.streets,
      maxZoom: this.maxZoom,
      worldCopyJump: true,
    }).setView([20, 0], 2);
    const attribution = escapeHtml(element.dataset.attribution || '');
    if (pmtilesUrl) {
      this.loadStreets(pmtilesUrl, attribution);
    } else if (tileUrl) {
      L.tileLayer(tileUrl, { maxZoom: STREET_MAX_ZOOM, attribution }).addTo(this.map);
    } else {
      this.showOutlines();
      this.noteNoStreets();
    }
    this.track = L.polyline([], { color: '#4da3ff', weight: 3, opacity: 0.8 }).addTo(this.map);
    this.circle = null;
    this.marker = null;
    this.followed = false;
  }

  /**
   * The PMTiles basemap: its header says how deep its tiles go (deeper zooms draw those
   * vectors larger); drawn as soon as the libraries (loaded only by a map that draws it) and
   * the header are here. The element's data-basemap-state says `loading`, `drawn` (every tile
   * in view painted) or `failed`.
   * @param {string} url
   * @param {string} attribution
   */
  async loadStreets(url, attribution) {
    const element = this.element;
    element.dataset.basemapState = 'loading';
    try {
      const { PMTiles } = await import(PMTILES_URL);
      const archive = new PMTiles(new URL(url, window.location.href).href);
      const [header, protomaps] = await Promise.all([archive.getHeader(), loadProtomaps()]);
      if (!protomaps) {
        throw new Error('protomaps-leaflet not loaded');
      }
      const layer = protomaps.leafletLayer({
        url: archive,
        flavor: pageIsDark() ? 'dark' : 'light',
        lang: document.documentElement.lang || 'en',
        maxDataZoom: header.maxZoom,
        maxZoom: STREET_MAX_ZOOM,
        attribution,
      });
      layer.on('loading', () => {
        element.dataset.basemapState = 'loading';
      });
      layer.on('load', () => {
        element.dataset.basemapState = 'drawn';
      });
      layer.addTo(this.map);
      layer.bringToBack();
    } catch (error) {
      // The file went away or the library did not load: borders at least.
      console.warn('map: street basemap not loaded', error);
      element.dataset.basemapState = 'failed';
      this.showOutlines();
    }
  }

  showOutlines() {
    this.element.classList.add('map-offline');
    this.loadAtlas();
  }

  /** Says on the map why there are no streets: a person zooming in must not guess. */
  noteNoStreets() {
    const note = new L.Control({ position: 'bottomleft' });
    note.onAdd = () => {
      const text = L.DomUtil.create('p', 'map-note');
      text.dataset.testid = 'map-no-streets';
      text.setAttribute('role', 'note');
      text.textContent = t('map.no_street_detail');
      return text;
    };
    note.addTo(this.map);
  }

  async loadAtlas() {
    const topojson = /** @type {any} */ (window).topojson;
    if (!topojson) {
      console.warn('map: topojson-client not loaded; no basemap');
      return;
    }
    try {
      const response = await fetch(ATLAS_URL, { credentials: 'same-origin' });
      const topology = await response.json();
      const countries = topojson.feature(topology, topology.objects.countries);
      for (const feature of countries.features) {
        unwrapGeometry(feature.geometry);
      }
      L.geoJSON(countries, {
        interactive: false,
        style: { color: '#5b6b7d', weight: 1, fillColor: '#2a3542', fillOpacity: 1 },
      })
        .addTo(this.map)
        .bringToBack();
    } catch (error) {
      console.warn('map: offline basemap not loaded', error);
    }
  }

  /**
   * Adds a position: marker, accuracy circle, track; keeps it in view.
   * @param {{lat: number, lon: number, accuracy?: number | null}} fix
   */
  show(fix) {
    const here = L.latLng(fix.lat, fix.lon);
    const accuracy = Number.isFinite(fix.accuracy) ? Number(fix.accuracy) : 0;
    this.track.addLatLng(here);
    const points = this.track.getLatLngs();
    if (points.length > TRACK_POINTS_MAX) {
      this.track.setLatLngs(points.slice(-TRACK_POINTS_MAX));
    }
    if (!this.marker) {
      this.circle = L.circle(here, {
        radius: accuracy,
        color: '#4da3ff',
        weight: 1,
        fillOpacity: 0.15,
      }).addTo(this.map);
      this.marker = L.circleMarker(here, {
        radius: 8,
        color: '#ffffff',
        weight: 3,
        fillColor: '#e5484d',
        fillOpacity: 1,
      }).addTo(this.map);
    } else {
      this.marker.setLatLng(here);
      this.circle.setLatLng(here).setRadius(accuracy);
    }
    if (!this.followed || !this.map.getBounds().contains(here)) {
      this.followed = true;
      const bounds = accuracy > 0 ? this.circle.getBounds() : L.latLngBounds([here, here]);
      this.map.fitBounds(bounds, { maxZoom: this.fitZoom, padding: [24, 24] });
    }
  }

  /** Forget the caller (the call ended): an empty map again. */
  clear() {
    this.track.setLatLngs([]);
    this.marker?.remove();
    this.circle?.remove();
    this.marker = null;
    this.circle = null;
    this.followed = false;
    this.map.setView([20, 0], 2);
  }

  /** The box was resized or shown: let Leaflet measure it again. */
  refresh() {
    this.map.invalidateSize();
  }
}
